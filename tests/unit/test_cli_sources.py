"""``--source`` arguments of ``trtapps run`` and ``predict``: what each becomes, and their order."""

from __future__ import annotations

from pathlib import Path

from trtapps.cli.commands import _sources_override, source_from_argument


def test_each_argument_becomes_the_source_its_form_names() -> None:
    assert source_from_argument("0") == {"type": "camera", "index": 0}
    assert source_from_argument("rtsp://cam/1") == {"type": "stream", "url": "rtsp://cam/1"}
    assert source_from_argument("clip.MP4") == {"type": "video", "path": str(Path("clip.MP4").resolve())}
    assert source_from_argument("phone.3gp") == {"type": "video", "path": str(Path("phone.3gp").resolve())}
    assert source_from_argument("bus.JPG") == {"type": "images", "path": str(Path("bus.JPG").resolve())}
    assert source_from_argument("photos") == {"type": "images", "path": str(Path("photos").resolve())}
    assert source_from_argument("shots/*.jpg") == {"type": "images", "path": "shots/*.jpg"}
    assert source_from_argument("pkg:trtapps_plugins/x") == {"type": "images", "path": "pkg:trtapps_plugins/x"}


def test_sources_keep_the_command_lines_order_and_neighbouring_images_join() -> None:
    got = _sources_override(["photos/", "clip.mp4", "a.jpg", "b.jpg", "rtsp://cam"])["sources"]
    assert [s["type"] for s in got] == ["images", "video", "images", "stream"]  # source_id = position
    assert got[0]["path"] == [str(Path("photos/").resolve())]
    assert got[2]["path"] == [str(Path("a.jpg").resolve()), str(Path("b.jpg").resolve())]
    assert _sources_override(None) == {} == _sources_override([])


def test_a_folder_with_a_dot_in_its_name_is_images(tmp_path: Path) -> None:
    folder = tmp_path / "set.v2"
    folder.mkdir()
    assert source_from_argument(str(folder)) == {"type": "images", "path": str(folder.resolve())}
