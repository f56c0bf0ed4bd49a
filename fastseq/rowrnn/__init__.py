"""RNN autoencoders of image rows: models, completion of half-seen images, and
pictures of what hidden units respond to."""
from fastseq._util.deprecation import moved_names
from fastseq.rowrnn.models import (RowRNN, TiedRNN, as_sequences, baseline_errors, complete, completion_mse,
                                   make_model)
from fastseq.rowrnn.units import hidden_unit_pictures

__all__ = ["RowRNN", "TiedRNN", "as_sequences", "baseline_errors", "complete", "completion_mse",
           "hidden_unit_pictures", "make_model"]

# no longer public here (still in their modules): make_model builds every model kind
MOVED = {
    "GRURows": ("fastseq.rowrnn.models", "make_model builds it; import it from fastseq.rowrnn.models"),
    "LSTMRows": ("fastseq.rowrnn.models", "make_model builds it; import it from fastseq.rowrnn.models"),
    "UntiedRNN": ("fastseq.rowrnn.models", "make_model builds it; import it from fastseq.rowrnn.models"),
    "RowDecoder": ("fastseq.rowrnn.models", "import it from fastseq.rowrnn.models"),
    "sample_windows": ("fastseq.rowrnn.units", "import it from fastseq.rowrnn.units"),
    "unit_responses": ("fastseq.rowrnn.units", "hidden_unit_pictures draws them; import it from fastseq.rowrnn.units"),
    "load_model": ("fastseq.rowrnn.models", "use fastseq.load(path)"),
    "save_model": ("fastseq.rowrnn.models", "use model.save(path) or fastseq.save(model, path)"),
}
__getattr__ = moved_names(__name__, MOVED)
