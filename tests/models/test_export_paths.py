"""The export path checks speak to Python callers as well as to the CLI: no ``--out`` in them."""

from __future__ import annotations

import pytest

from evoprune.errors import EvopruneError
from evoprune.io import prepare_out_dir
from evoprune.models.export import check_output


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("m.onnx", None, "ending in .keras or .tflite (the format follows the suffix). Received: "),
        ("m.keras", "onnx", "Expected the format keras or tflite. Received: onnx"),
        ("m.keras", "tflite", "ending in .tflite for the format tflite. Received: "),
        ("folder.keras", None, "Expected an output file, not a directory. Received: "),
    ],
)
def test_bad_export_paths_name_the_value_not_a_cli_flag(tmp_path, name, fmt, expected):
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(EvopruneError) as error:
        check_output(tmp_path / name, fmt)
    message = str(error.value)
    assert expected in message and "--" not in message
    assert fmt == "onnx" or message.endswith(str(tmp_path / name))


def test_a_format_from_the_suffix_is_returned(tmp_path):
    assert check_output(tmp_path / "m.tflite", None) == "tflite"
    assert check_output(tmp_path / "deeper" / "m.keras", None) == "keras"


def test_an_out_path_that_is_a_file_is_named_without_a_cli_flag(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EvopruneError, match="exists and is not a directory") as error:
        prepare_out_dir(tmp_path / "file")
    assert "--" not in str(error.value) and str(tmp_path / "file") in str(error.value)
