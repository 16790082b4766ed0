"""Inputs of predict: paths, folders and globs expanded; a generated video read back."""

import numpy as np
import pytest

from kyolo.media import VideoWriter, expand_sources, video_frames


def test_expand_sources(tmp_path):
    for name in ("b.png", "a.jpg", "clip.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    found, problems = expand_sources(
        [str(tmp_path), str(tmp_path / "*.png"), str(tmp_path / "notes.txt")]
    )
    names = [p.rsplit("/", 1)[1] for p in found]
    assert names == ["a.jpg", "b.png", "clip.mp4", "b.png", "notes.txt"] and not problems
    _, problems = expand_sources(
        [str(tmp_path / "missing.png"), str(tmp_path / "empty"), str(tmp_path / "*.bmp")]
    )
    assert [p.split(": ")[1] for p in problems] == [
        "no such file or folder",
        "a folder without images or videos (.bmp, .gif, .jpeg, .jpg, .png, .avi, .m4v, .mkv, "
        ".mov, .mp4, .mpeg, .webm)",
        "no file matches",
    ]


def test_video_round_trip(tmp_path):
    pytest.importorskip("cv2")
    frames = [np.full((32, 48, 3), value, np.uint8) for value in (40, 120, 200)]
    with VideoWriter(str(tmp_path / "v.mp4"), fps=5) as writer:
        for frame in frames:
            writer.write(frame)
    fps, read = video_frames(str(tmp_path / "v.mp4"))
    read = list(read)
    assert fps == 5 and len(read) == 3 and read[0].shape == (32, 48, 3)
    # Lossy codec (and video levels): flat frames come back within a few grey levels.
    assert [abs(int(r.mean()) - int(f.mean())) <= 6 for r, f in zip(read, frames, strict=True)] == [
        True
    ] * 3
    with pytest.raises(ValueError, match="cannot open this video"):
        video_frames(str(tmp_path / "missing.mp4"))
