"""t2t_mtl: one instruction-following seq2seq model for many tasks."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`from t2t_mtl import Predictor` without importing torch for every command."""
    if name == "Predictor":
        from t2t_mtl.inference import Predictor

        return Predictor
    raise AttributeError(name)
