"""Job manifests: YAML and CSV read into typed `talkface personalize` options, and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from personalize.manifest import read_manifest
from personalize.options import manifest_options
from recon3d.errors import InputError
from recon3d.video import probe

CLIP = "vox_00010.mp4"


@pytest.fixture
def folder(clips: Path, tmp_path: Path) -> Path:
    """A manifest folder holding a real clip, so that relative paths and `end: N%` resolve."""
    (tmp_path / "clips").mkdir()
    shutil.copy(clips / CLIP, tmp_path / "clips" / CLIP)
    return tmp_path


def test_yaml_defaults_apply_to_each_actor_and_values_take_the_options_types(folder):
    (folder / "actors.yaml").write_text(
        "defaults: {end: 50%, refine_steps: 20, device: cpu}\n"
        "actors:\n"
        f"  - {{name: ana, video: clips/{CLIP}}}\n"
        f"  - {{name: ben, video: clips/{CLIP}, refine_steps: '7', end: 1.5, voice_sample: v.wav, heldout: h.mp4}}\n"
    )
    ana, ben = read_manifest(folder / "actors.yaml", manifest_options())
    assert (ana.name, ana.video, ana.heldout) == ("ana", folder / "clips" / CLIP, None)
    assert ana.options == {
        "end": round(probe(folder / "clips" / CLIP).duration / 2, 3),
        "refine_steps": 20,
        "device": "cpu",
    }
    assert ben.options == {"end": 1.5, "refine_steps": 7, "device": "cpu", "voice_sample": folder / "v.wav"}
    assert ben.heldout == folder / "h.mp4"


def test_csv_empty_cells_take_the_commands_defaults(folder):
    (folder / "actors.csv").write_text(
        f"name,video,seed,refine_size,end\nana,clips/{CLIP},3,,\nben,clips/{CLIP},,64,25%\n"
    )
    ana, ben = read_manifest(folder / "actors.csv", manifest_options())
    assert ana.options == {"seed": 3}
    assert ben.options == {"refine_size": 64, "end": round(probe(ben.video).duration / 4, 3)}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("device: gpu", "actor 1 (ana), device: 'gpu' is not one of auto, cpu, cuda"),
        ("landmark_steps: many", "actor 1 (ana), landmark_steps: 'many' is not a valid int"),
        ("end: 150%", "actor 1 (ana), end: 150% must lie between 0% and 100%"),
        ("end: half%", "actor 1 (ana), end: 'half%' is neither seconds nor a percentage"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_actor_and_option(folder, row, message):
    (folder / "actors.yaml").write_text(f"actors:\n  - {{name: ana, video: clips/{CLIP}, {row}}}\n")
    with pytest.raises(InputError, match="^" + str(folder / "actors.yaml").replace(".", r"\.") + ": ") as error:
        read_manifest(folder / "actors.yaml", manifest_options())
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("actors: []\n", "the manifest lists no actors"),
        ("- just a list\n", "a YAML manifest is a mapping with an `actors` list"),
        ("actors:\n  - {name: ../up, video: x.mp4}\n", "name '../up' is not a directory name"),
        ("actors: [\n", "not a readable YAML manifest"),
    ],
)
def test_a_malformed_manifest_is_refused_with_its_reason(folder, text, message):
    (folder / "actors.yaml").write_text(text)
    with pytest.raises(InputError, match=message):
        read_manifest(folder / "actors.yaml", manifest_options())


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # Excel's "CSV UTF-8 (Comma delimited)": a byte order mark, Windows line ends.
        ("actors.csv", "name,video,seed\r\nana,clips/a.mp4,3\r\nben,clips/b.mp4,\r\n"),
        ("actors.yaml", "actors:\n  - {name: ana, video: clips/a.mp4, seed: 3}\n  - {name: ben, video: clips/b.mp4}\n"),
    ],
)
def test_a_manifest_saved_with_a_byte_order_mark_reads_as_without(tmp_path, name, text):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    ana, ben = read_manifest(tmp_path / name, manifest_options())
    assert (ana.name, ana.video, ana.options) == ("ana", tmp_path / "clips" / "a.mp4", {"seed": 3})
    assert (ben.name, ben.video, ben.options) == ("ben", tmp_path / "clips" / "b.mp4", {})


def test_a_folder_given_as_the_video_of_a_share_of_its_duration_is_refused_as_a_folder(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "actors.yaml").write_text("actors:\n  - {name: ana, video: clips, end: 50%}\n")
    with pytest.raises(InputError) as error:
        read_manifest(tmp_path / "actors.yaml", manifest_options())
    assert str(error.value) == (
        f"{tmp_path / 'actors.yaml'}: actor 1 (ana): {tmp_path / 'clips'} is a folder, not a video; "
        "give the path of a video file"
    )
