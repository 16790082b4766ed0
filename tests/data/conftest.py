import os

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def write_image():
    """``write_image(path, width, height, channels=3, dtype=uint8, array=None)`` → path.

    ``channels=1`` writes a grey image (uint16: a 16-bit PNG), 4 writes RGBA. Default pixels are
    seeded noise.
    """

    def write(path, width, height, channels=3, dtype=np.uint8, array=None):
        os.makedirs(os.path.dirname(str(path)), exist_ok=True)
        if array is None:
            shape = (height, width) if channels == 1 else (height, width, channels)
            array = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
        Image.fromarray(array).save(str(path))
        return str(path)

    return write
