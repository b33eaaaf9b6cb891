import sys; sys.path.insert(0, "tests")
from test_train_cli import *
def test_dbg(tiny, tmp_path):
    shown = invoke(tiny_args(tiny, tmp_path / "a", "--max-steps", "2", "--epochs", "1"))
    print("STDERR", repr(shown.stderr[:3000]))
    print("OUT", repr(shown.output[:500]))
