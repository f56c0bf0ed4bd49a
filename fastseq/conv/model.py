"""A convolutional autoencoder whose layers can be trained one at a time.

Layer ``l`` is a strided convolution (encoder) and a transposed convolution back to the
previous layer's shape (decoder). Shapes: ``N`` images, ``S x S`` pixels, ``C_l`` channels
of ``H_l x W_l`` at layer ``l``; the top layer's ``C_L x H_L x W_L`` values are the codes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from fastseq._util import files
from fastseq._util.memory import check_fits
from fastseq._util.validate import file_path, one_of, positive_int, seed_arg, torch_device

__all__ = ["ConvAutoencoder", "ConvConfig", "default_config", "load_autoencoder"]

_ACTIVATIONS = {"tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def _ints(name: str, value) -> tuple:
    """A sequence of layer settings (list, tuple or 1-D array), not a string or a scalar."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or getattr(value, "ndim", 1) != 1:
        raise TypeError(f"Expected {name} to be a sequence with one integer per layer, got {type(value).__name__} "
                        f"{value!r}.")
    return tuple(value)


@dataclass(frozen=True)
class ConvConfig:
    """Shape of a :class:`ConvAutoencoder`.

    Attributes:
        size: S, the side of the square input images.
        channels: ``C_1..C_L``, channels of each layer's output.
        strides: stride of each layer (1 keeps the size, 2 halves it).
        kernels: kernel side of each layer; default 4 for stride 2 and 3 for stride 1.
        in_channels: channels of the input (1 for grey faces).
        activation: ``"tanh"`` (default; codes in (-1, 1)), ``"elu"`` or ``"leaky_relu"``;
            the image decoder always ends in tanh, as the faces lie in [-1, 1].

    Example:
        >>> c = ConvConfig(64, (16, 32, 64, 64, 32), (2, 2, 2, 2, 1))
        >>> c.shapes()[-1], c.code_size
        ((32, 4, 4), 512)
    """

    size: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    kernels: tuple[int, ...] | None = None
    in_channels: int = 1
    activation: str = "tanh"

    def __post_init__(self) -> None:
        positive_int("size", self.size)
        positive_int("in_channels", self.in_channels)
        object.__setattr__(self, "channels", tuple(positive_int("channels", c) for c in _ints("channels", self.channels)))
        object.__setattr__(self, "strides", tuple(positive_int("strides", s) for s in _ints("strides", self.strides)))
        if not self.channels or len(self.channels) != len(self.strides):
            raise ValueError(f"Expected channels and strides of one length >= 1, got {len(self.channels)} "
                             f"channels and {len(self.strides)} strides.")
        kernels = (tuple(4 if s == 2 else max(3, s) for s in self.strides) if self.kernels is None
                   else _ints("kernels", self.kernels))
        object.__setattr__(self, "kernels", tuple(positive_int("kernels", k) for k in kernels))
        if len(self.kernels) != len(self.strides):
            raise ValueError(f"Expected kernels to have one entry per layer ({len(self.strides)}), got {len(self.kernels)}.")
        if not isinstance(self.activation, str) or self.activation not in _ACTIVATIONS:
            raise ValueError(f"Expected activation in {sorted(_ACTIVATIONS)}, got {self.activation!r}.")
        self.shapes()  # raises if size is too small for the network's depth

    @property
    def depth(self) -> int:
        return len(self.channels)

    def padding(self, layer: int) -> int:
        return max(0, (self.kernels[layer] - self.strides[layer] + 1) // 2)

    def shapes(self) -> list[tuple[int, int, int]]:
        """``(C_l, H_l, W_l)`` for the input (l = 0) and every layer's output."""
        out = [(self.in_channels, self.size, self.size)]
        for layer, (c, s, k) in enumerate(zip(self.channels, self.strides, self.kernels)):
            n = (out[-1][1] + 2 * self.padding(layer) - k) // s + 1
            if n < 1 or out[-1][1] < s:
                raise ValueError(f"Expected size to be at least {self.min_size()} for {self.depth} layers with "
                                 f"strides {list(self.strides)}, got {self.size}.")
            out.append((c, n, n))
        return out

    def min_size(self) -> int:
        """The smallest S this network can take."""
        # from one output pixel back: layer l needs n >= s and (n + 2p - k) // s + 1 >= m, the
        # next layer's least input; a larger n never hurts, so these bounds are exact
        m = 1
        for layer in reversed(range(self.depth)):
            s, k = self.strides[layer], self.kernels[layer]
            m = max(s, (m - 1) * s + k - 2 * self.padding(layer))
        return m

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return self.shapes()[-1]

    @property
    def code_size(self) -> int:
        c, h, w = self.code_shape
        return c * h * w

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ConvConfig":
        return _config_from(json.loads(text))

    def describe(self) -> str:
        return (f"{self.size}x{self.size} input, channels {list(self.channels)}, strides {list(self.strides)}, "
                f"kernels {list(self.kernels)}, {self.activation}")


def _config_from(d: dict) -> ConvConfig:
    """A ConvConfig from the dict ``to_json`` writes (lists for the per-layer settings)."""
    d = dict(d)
    for key in ("channels", "strides", "kernels"):
        d[key] = tuple(d[key]) if d.get(key) is not None else None
    return ConvConfig(**d)


def default_config(size: int = 64, data: str = "faces") -> ConvConfig:
    """The network used for S x S faces (or digits).

    Faces, S >= 48: the original's five layers, the first four with stride 2, ending in
    32 channels (``4 x 4 x 32 = 512`` codes at S = 64). Smaller S (the 25 x 25 embedded
    faces): three layers, two with stride 2, ending in 8 channels (``6 x 6 x 8 = 288``
    codes at S = 25).

    ``data="digits"`` (the 28 x 28 MNIST digits): three layers, all with stride 2, ending in
    8 channels, with ELU units (``3 x 3 x 8 = 72`` codes at S = 28). The digits network
    compresses: at the faces network's ``7 x 7 x 8 = 392`` codes (half the pixels) PCA keeps
    99.4% of the held-out digits' variance and no network trained in seconds comes near it;
    at 72 codes PCA keeps 90% and the network does better (see ``docs/guide/faces.md``).

    Args:
        size: S, the side of the images.
        data: ``"faces"`` or ``"digits"``.

    Example:
        >>> default_config(64).code_size, default_config(25).code_shape, default_config(28, "digits").code_size
        (512, (8, 6, 6), 72)
    """
    size = positive_int("size", size)
    one_of("data", data, ("faces", "digits"))
    if data == "digits":
        return ConvConfig(size, (32, 32, 8), (2, 2, 2), activation="elu")
    if size >= 48:
        return ConvConfig(size, (32, 64, 64, 64, 32), (2, 2, 2, 2, 1))
    return ConvConfig(size, (32, 32, 8), (2, 2, 1))


class ConvAutoencoder(nn.Module):
    """Stacked convolutional autoencoder layers; see :class:`ConvConfig`.

    Args:
        config: the network's shape (or an ``int`` S for :func:`default_config`).
        seed: seed of the initial weights (the global torch generator is left alone).

    Example:
        >>> m = ConvAutoencoder(ConvConfig(16, (4, 2), (2, 2)), seed=0)
        >>> x = np.zeros((3, 16, 16), np.float32)
        >>> m.encode(x).shape, m.decode(m.encode(x)).shape
        ((3, 32), (3, 16, 16))
    """

    def __init__(self, config: ConvConfig | int, seed: int | None = 0) -> None:
        super().__init__()
        if isinstance(config, (int, np.integer)) and not isinstance(config, bool):
            try:
                config = default_config(int(config))
            except ValueError as exc:
                raise ValueError(f"Expected config to be a ConvConfig or a usable image size: {exc}") from None
        elif not isinstance(config, ConvConfig):
            raise TypeError(f"Expected config to be a ConvConfig or an image size, got {type(config).__name__}.")
        seed = seed_arg("seed", seed)
        self.config = config
        cfg, shapes = self.config, self.config.shapes()
        weights = sum(shapes[i][0] * shapes[i + 1][0] * cfg.kernels[i] ** 2 for i in range(cfg.depth))
        check_fits(f"ConvAutoencoder with channels={cfg.channels} and kernels={cfg.kernels}", 2 * 4 * weights)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.encoders = nn.ModuleList()
            self.decoders = nn.ModuleList()
            for layer in range(cfg.depth):
                c_in, n_in = shapes[layer][0], shapes[layer][1]
                c_out, n_out = shapes[layer + 1][0], shapes[layer + 1][1]
                s, k, p = cfg.strides[layer], cfg.kernels[layer], cfg.padding(layer)
                extra = n_in - ((n_out - 1) * s - 2 * p + k)  # output_padding restores odd sizes
                self.encoders.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
                self.decoders.append(nn.ConvTranspose2d(c_out, c_in, k, stride=s, padding=p, output_padding=extra))
        self.hidden_act = _ACTIVATIONS[cfg.activation]()
        self.image_act = nn.Tanh()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---------------------------------------------------------------- tensors (N x C x H x W)
    def up_layer(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Layer ``layer`` (0-based) of the encoder: ``N x C_l x H_l x W_l`` -> the next."""
        return self.hidden_act(self.encoders[layer](x))

    def down_layer(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """Decoder of layer ``layer``: its output back to the shape of its input."""
        out = self.decoders[layer](z)
        return self.image_act(out) if layer == 0 else self.hidden_act(out)

    def up(self, x: torch.Tensor, layers: int | None = None) -> list[torch.Tensor]:
        """Activations of the first ``layers`` layers (default all), ``[a_1, ..., a_layers]``."""
        out = []
        for layer in range(self.config.depth if layers is None else layers):
            x = self.up_layer(layer, x)
            out.append(x)
        return out

    def down(self, z: torch.Tensor, start: int | None = None, stop: int = 0) -> torch.Tensor:
        """Decode an activation of layer ``start`` (1-based; default the top) down to layer ``stop``."""
        start = self.config.depth if start is None else start
        for layer in range(start - 1, stop - 1, -1):
            z = self.down_layer(layer, z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.up(x)[-1])

    # ---------------------------------------------------------------- NumPy in and out, batched
    def _images(self, images, name: str = "images") -> np.ndarray:
        arr = np.asarray(images, dtype=np.float32)
        s = self.config.size
        if arr.ndim != 3 or arr.shape[1:] != (s, s):
            raise ValueError(f"Expected {name} to be N x {s} x {s}, got shape {arr.shape}.")
        return arr

    def _codes(self, codes, name: str = "codes") -> np.ndarray:
        arr = np.asarray(codes, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.config.code_size:
            raise ValueError(f"Expected {name} to be N x {self.config.code_size}, got shape {arr.shape}.")
        return arr

    def _batches(self, arr: np.ndarray, batch_size: int):
        batch_size = positive_int("batch_size", batch_size)
        for lo in range(0, arr.shape[0], batch_size):
            yield torch.as_tensor(arr[lo:lo + batch_size], device=self.device)

    @torch.no_grad()
    def encode(self, images, batch_size: int = 256) -> np.ndarray:
        """Top-layer codes of ``N x S x S`` images, ``N x D`` float32 (``D = C_L H_L W_L``)."""
        arr = self._images(images)
        out = np.empty((arr.shape[0], self.config.code_size), np.float32)
        lo = 0
        for x in self._batches(arr, batch_size):
            z = self.up(x[:, None])[-1]
            out[lo:lo + z.shape[0]] = z.flatten(1).cpu().numpy()
            lo += z.shape[0]
        return out

    @torch.no_grad()
    def decode(self, codes, batch_size: int = 256) -> np.ndarray:
        """Images ``N x S x S`` from top-layer codes ``N x D``."""
        arr = self._codes(codes)
        s, shape = self.config.size, self.config.code_shape
        out = np.empty((arr.shape[0], s, s), np.float32)
        lo = 0
        for z in self._batches(arr, batch_size):
            x = self.down(z.view(-1, *shape))
            out[lo:lo + x.shape[0]] = x[:, 0].cpu().numpy()
            lo += x.shape[0]
        return out

    def reconstruct(self, images, batch_size: int = 256) -> np.ndarray:
        """``decode(encode(images))``."""
        return self.decode(self.encode(images, batch_size), batch_size)

    # ---------------------------------------------------------------- files
    _file_kind = "conv_autoencoder"

    def save(self, path: str | os.PathLike) -> None:
        """Write weights and configuration in fastseq's file format (safetensors with a JSON
        header, atomically; see :func:`fastseq.save`). The name must end in ``.safetensors``
        (or ``.npz``, a name earlier versions wrote their own format to; the content is the
        same safetensors file)."""
        name = os.fspath(file_path("path", path))
        if not name.endswith((".safetensors", ".npz")):
            raise ValueError(f"Expected path to end in .safetensors or .npz, got {name!r}.")
        files.write(path, "conv_autoencoder", {"config": asdict(self.config)}, self.state_dict())


def load_autoencoder(path: str | os.PathLike, config: ConvConfig | None = None,
                     device: str | torch.device = "cpu") -> ConvAutoencoder:
    """Read a network written by :meth:`ConvAutoencoder.save`: :func:`fastseq.load` for
    network files only, with an optional check of the shape. No code in the file is run.

    Also reads the ``.safetensors`` and ``.npz`` files of earlier fastseq versions (format
    ``fastseq-conv-1``).

    Args:
        path: the file.
        config: when given, the file must hold a network of exactly this shape.
        device: where the weights go.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a fastseq network file (unreadable, truncated, another kind, or
            written by a newer fastseq), or a network of another configuration.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "cnn.safetensors")
        >>> ConvAutoencoder(ConvConfig(16, (4,), (2,))).save(p)
        >>> load_autoencoder(p).config.code_size
        256
    """
    device = torch_device("device", device)
    header, tensors = files.read(path, "conv_autoencoder")
    path = os.fspath(path)
    with files.building(path, "conv_autoencoder"):
        stored = _config_from(header["config"])
    if config is not None and stored != config:
        raise ValueError(f"Expected model to hold a network for {config.describe()}, got one for "
                         f"{stored.describe()} in {path!r}.")
    with files.building(path, "conv_autoencoder"):
        model = ConvAutoencoder(stored, seed=None)
        model.load_state_dict(tensors)
    return model.to(device)
