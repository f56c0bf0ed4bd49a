"""RNN autoencoders of image rows: models, completion of half-seen images, and
pictures of what hidden units respond to."""
from fastseq.rowrnn.models import (GRURows, LSTMRows, RowDecoder, RowRNN, TiedRNN, UntiedRNN, as_sequences,
                                   baseline_errors, complete, completion_mse, load_model, make_model, save_model)
from fastseq.rowrnn.units import hidden_unit_pictures, sample_windows, unit_responses

__all__ = [
    "GRURows", "LSTMRows", "RowDecoder", "RowRNN", "TiedRNN", "UntiedRNN", "as_sequences",
    "baseline_errors", "complete", "completion_mse", "hidden_unit_pictures", "load_model",
    "make_model", "sample_windows", "save_model", "unit_responses",
]
