from pathlib import Path

from PIL import Image
from skimage import data as skdata


def write_photos(folder: Path, names=("astronaut", "coffee", "rocket")) -> Path:
    """An HR-only data folder: 256x256 crops of real photos bundled with scikit-image."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(getattr(skdata, name)()[:256, :256]).save(folder / f"{name}.png")
    return folder
