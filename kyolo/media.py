"""Images and videos to run a detector on: expanding paths, reading frames, writing video.

Videos need OpenCV (``pip install -e ".[video]"``, i.e. ``opencv-python-headless``), imported
only when a video is read or written.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from kyolo.data.yolo_txt import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".webm")
"""Extensions (lower case) read as videos; OpenCV decodes them."""


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def expand_sources(sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files, folders and glob patterns → ``(media files, problems)``.

    A folder gives its images and videos (not recursive, sorted); a pattern (``*``, ``?``,
    ``[``) that is not an existing path gives its matches, sorted. ``problems`` names each source
    that gave nothing: a missing path, an empty folder or pattern, a file of another kind.
    """
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    found: list[str] = []
    problems: list[str] = []
    for source in sources:
        if os.path.isdir(source):
            inside = [
                os.path.join(source, name)
                for name in sorted(os.listdir(source))
                if os.path.splitext(name)[1].lower() in known
            ]
            found += inside
            if not inside:
                problems.append(f"{source}: a folder without images or videos ({', '.join(known)})")
        elif os.path.isfile(source):
            found.append(source)
        elif glob.has_magic(source):
            matches = sorted(path for path in glob.glob(source) if os.path.isfile(path))
            found += matches
            if not matches:
                problems.append(f"{source}: no file matches")
        else:
            problems.append(f"{source}: no such file or folder")
    return found, problems


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ImportError(
            'reading or writing video needs OpenCV: pip install -e ".[video]" '
            "(opencv-python-headless)"
        ) from None
    return cv2


def video_frames(path: str) -> tuple[float, Iterator[np.ndarray]]:
    """``(frames per second, iterator of (h, w, 3) uint8 RGB frames)`` of a video file.

    Raises ``ValueError`` naming ``path`` when OpenCV cannot open it.
    """
    cv2 = _cv2()
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return fps, frames()


class VideoWriter:
    """Write ``(h, w, 3)`` uint8 RGB frames to an ``.mp4`` (``mp4v``); use as a context manager.

    The frame size is taken from the first frame.
    """

    def __init__(self, path: str, fps: float) -> None:
        self.path = path
        self.fps = fps
        self._writer = None

    def write(self, frame: np.ndarray) -> None:
        cv2 = _cv2()
        if self._writer is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(self.path, fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot write this video")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.release()
