from fastseq import bptt as bptt
from fastseq import boltzmann as boltzmann
from fastseq import conv as conv
from fastseq import datasets as datasets
from fastseq import mosaic as mosaic
from fastseq import rowrnn as rowrnn
from fastseq._util.files import load as load
from fastseq._util.files import save as save
from fastseq.boltzmann import BetaRBM as BetaRBM
from fastseq.boltzmann import GaussianRBM as GaussianRBM
from fastseq.boltzmann import RBM as RBM
from fastseq.bptt import run_window as run_window
from fastseq.bptt import SequenceStore as SequenceStore
from fastseq.bptt import SlotSwapLoader as SlotSwapLoader
from fastseq.bptt import train_bptt as train_bptt
from fastseq.mosaic import corrsort as corrsort
from fastseq.mosaic import save_png as save_png
from fastseq.mosaic import tile as tile

SUBPACKAGES: tuple[str, ...]
__version__: str
__all__: list[str]
