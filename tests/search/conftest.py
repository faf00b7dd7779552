"""The helpers beside these tests (_driver, _photos, _services) are importable from the sub-folders
that mirror search/tune/ and search/bench/ too."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
