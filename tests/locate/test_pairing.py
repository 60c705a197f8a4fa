"""Which recordings are correlated with which (locate/pairing.py): pairs files, layouts
matched by sensor and time, and the wave speed each pair gets. No audio is read: the
recordings are empty files with the right names."""

from __future__ import annotations

from pathlib import Path

import pytest

from leakhunter.errors import ConfigError, InputError
from leakhunter.locate import wave_speed as ws
from leakhunter.locate.pairing import pairs_from_layout, read_pairs, resolve_speed


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


# resolve_speed


def test_resolve_speed_given_wins_and_errors() -> None:
    assert resolve_speed(1250.0, "pvc") == ws.WaveSpeed(1250.0, 1250.0, 1250.0, "given")
    assert resolve_speed(None, "di") == ws.for_material("ductile iron")
    assert resolve_speed(None, "pvc", 100.0, 5.0).speed == pytest.approx(
        ws.korteweg(3.0, 100.0, 5.0))
    with pytest.raises(ConfigError, match="give a wave speed or a pipe material"):
        resolve_speed(None, None)
    with pytest.raises(ConfigError, match="give a wave speed or a pipe material"):
        resolve_speed(None, "  ")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="wave speed must be positive"):
            resolve_speed(bad, "pvc")
    with pytest.raises(ConfigError, match="unknown pipe material 'brass'"):
        resolve_speed(None, "brass")
    with pytest.raises(ConfigError, match="diameter must be positive"):
        resolve_speed(None, "pvc", 0.0, 5.0)


# read_pairs


def test_read_pairs_resolves_paths_and_speeds(tmp_path: Path) -> None:
    _touch(tmp_path / "night", "a.wav", "b.wav", "c.wav")
    elsewhere = tmp_path / "other" / "d.wav"
    _touch(elsewhere.parent, elsewhere.name)
    csv_file = _write(tmp_path / "night" / "pairs.csv",
                      "A, B ,Distance_M,wave_speed_m_s,material,diameter_mm,wall_mm,leak_m\n"
                      "a.wav,b.wav,200,1250,pvc,,,50\n"
                      f"b.wav , c.wav,150,,ductile iron,100,8,\n"
                      f"c.wav,{elsewhere},80.5,,PE,,,\n")
    jobs = read_pairs(csv_file)
    assert [j.row for j in jobs] == [1, 2, 3] and [j.line for j in jobs] == [2, 3, 4]
    assert all(j.usable for j in jobs)
    first, second, third = jobs
    assert first.a == tmp_path / "night" / "a.wav" and first.b == tmp_path / "night" / "b.wav"
    assert (first.a_label, first.b_label, first.distance_m) == ("a.wav", "b.wav", 200.0)
    assert first.speed == ws.WaveSpeed(1250.0, 1250.0, 1250.0, "given")  # given wins
    # ductile iron, 100 mm bore, 8 mm wall: 2.2e9 * 100 / (170e9 * 8) = 0.161765
    assert second.speed is not None and second.speed.speed == pytest.approx(
        1480 / (1 + 0.161765) ** 0.5, rel=1e-5)
    assert second.speed.speed == pytest.approx(ws.korteweg(170.0, 100.0, 8.0))
    assert second.speed.low < second.speed.speed < second.speed.high
    assert third.b == elsewhere and third.b_label == str(elsewhere)
    assert third.speed == ws.for_material("pe")
    assert third.offset_s is None


def test_read_pairs_bad_rows_are_reported_not_raised(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "b.wav")
    (tmp_path / "sub").mkdir()
    csv_file = _write(tmp_path / "pairs.csv",
                      "a,b,distance_m,wave_speed_m_s,material,diameter_mm\n"
                      "a.wav,b.wav,-3,1200,,\n"
                      "a.wav,b.wav,100,,brass,\n"
                      "a.wav,gone.wav,100,1200,,\n"
                      "a.wav,b.wav,100,,,\n"
                      ",b.wav,abc,fast,,\n"
                      "a.wav,b.wav,100,,pvc,wide\n"
                      "a.wav,a.wav,100,0,,\n"
                      "sub,b.wav,100,1200,,\n")
    jobs = read_pairs(csv_file)
    problems = [j.problem for j in jobs]
    assert problems[0] == "distance must be positive, not -3 m"
    assert jobs[0].distance_m is None and jobs[0].speed is not None
    assert problems[1].startswith("unknown pipe material 'brass'; known: ductile iron")
    assert problems[2] == f"b: no such file: {tmp_path / 'gone.wav'}"
    assert problems[3] == "neither wave_speed_m_s nor material given"
    assert problems[4] == ("a is empty; distance_m is not a number: 'abc'; "
                           "wave_speed_m_s is not a number: 'fast'")
    assert jobs[4].a is None and jobs[4].a_label == ""
    assert problems[5] == "diameter_mm is not a number: 'wide'"
    assert problems[6] == ("a and b are the same file; "
                           "the wave speed must be positive, not 0 m/s")
    assert problems[7] == f"a: {tmp_path / 'sub'} is a folder, not a recording"
    assert not any(j.usable for j in jobs)


def test_read_pairs_header_problems_raise(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"lacks distance_m \(found: a, b, material"):
        read_pairs(_write(tmp_path / "p1.csv", "a,b,material\nx.wav,y.wav,pvc\n"))
    with pytest.raises(InputError, match="lacks wave_speed_m_s or material"):
        read_pairs(_write(tmp_path / "p2.csv", "a,b,distance_m\nx.wav,y.wav,3\n"))
    with pytest.raises(InputError, match="p3.csv: the pairs file is empty"):
        read_pairs(_write(tmp_path / "p3.csv", "\n\n"))
    with pytest.raises(InputError, match="header but no rows"):
        read_pairs(_write(tmp_path / "p4.csv", "a,b,distance_m,material\n"))
    with pytest.raises(InputError, match="not UTF-8"):
        (tmp_path / "p5.csv").write_bytes(b"RIFF\xff\xfe\x00\x01WAVE")
        read_pairs(tmp_path / "p5.csv")
    with pytest.raises(InputError, match=r"cannot read the pairs file \(No such file"):
        read_pairs(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="column.s. a appear more than once"):
        read_pairs(_write(tmp_path / "p6.csv", "a,A,b,distance_m,material\n"))


def test_read_pairs_bom_and_blank_lines(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "b.wav")
    csv_file = _write(tmp_path / "pairs.csv",
                      "\na,b,distance_m,material\n\n a.wav , b.wav , 100 , pvc \n,,,\n\n"
                      "b.wav,a.wav,50,steel\n", bom=True)
    jobs = read_pairs(csv_file)
    assert [(j.row, j.line, j.problem) for j in jobs] == [(1, 4, ""), (2, 7, "")]
    assert jobs[0].a == tmp_path / "a.wav" and jobs[0].a_label == "a.wav"


# pairs_from_layout


def _night(folder: Path, sensor: str, times: list[str]) -> None:
    _touch(folder, *(f"{sensor}~r{i}~{t}~0.wav" for i, t in enumerate(times)))


LAYOUT = "sensor_a,sensor_b,distance_m,material\nA17,B22,212.5,ductile iron\n"


def test_layout_pairs_each_a_with_nearest_b(tmp_path: Path) -> None:
    night = tmp_path / "night"
    # written out of order: the jobs follow A's timestamp
    _night(night, "A17", ["20240301T030000", "20240301T010000", "20240301T020000"])
    _night(night / "sub", "B22", ["20240301T010020", "20240301T020020", "20240301T030020"])
    result = pairs_from_layout(_write(tmp_path / "layout.csv", LAYOUT), [night], 60.0)
    assert result.notes == [] and result.left_out == []
    assert len(result.jobs) == 3 and all(j.usable for j in result.jobs)
    assert [j.offset_s for j in result.jobs] == [20.0, 20.0, 20.0]
    assert [j.a_label for j in result.jobs] == [
        "A17~r1~20240301T010000~0.wav", "A17~r2~20240301T020000~0.wav",
        "A17~r0~20240301T030000~0.wav"]
    assert [j.b_label for j in result.jobs] == [
        str(Path("sub") / f"B22~r{i}~20240301T0{i + 1}0020~0.wav") for i in range(3)]
    job = result.jobs[0]
    assert job.a == night / job.a_label and job.b == night / job.b_label
    assert (job.row, job.line, job.sensor_a, job.sensor_b) == (1, 2, "A17", "B22")
    assert job.distance_m == 212.5 and job.speed == ws.for_material("ductile iron")


def test_layout_far_partner_is_a_problem(tmp_path: Path) -> None:
    night = tmp_path / "night"
    _night(night, "A17", ["20240301T010000"])
    _night(night, "B22", ["20240301T030000"])
    result = pairs_from_layout(_write(tmp_path / "layout.csv", LAYOUT), [night], 60.0)
    [job] = result.jobs
    assert job.problem == ("timestamps 7,200 s apart, more than --max-offset 60 s "
                           "(nearest B22 recording: B22~r0~20240301T030000~0.wav)")
    assert job.offset_s == 7200.0 and job.b == night / "B22~r0~20240301T030000~0.wav"
    # a wider limit pairs them
    [job] = pairs_from_layout(tmp_path / "layout.csv", [night], 7200.0).jobs
    assert job.usable and job.offset_s == 7200.0


def test_layout_compares_timestamps_of_different_zones_by_the_instant(tmp_path: Path) -> None:
    night = tmp_path / "night"
    _night(night, "A17", ["2024-03-01T04:00:00+01:00"])  # 03:00 UTC
    _night(night, "B22", ["2024-03-01T03:00:05Z"])
    [job] = pairs_from_layout(_write(tmp_path / "layout.csv", LAYOUT), [night], 60.0).jobs
    assert job.usable and job.offset_s == 5.0


def test_layout_each_b_used_once(tmp_path: Path) -> None:
    night = tmp_path / "night"
    _night(night, "A17", ["20240301T010000", "20240301T010030"])
    _night(night, "B22", ["20240301T010040"])
    jobs = pairs_from_layout(_write(tmp_path / "layout.csv", LAYOUT), [night], 60.0).jobs
    # the closer A (10 s) takes the one B; the other is told why it has none
    assert [j.usable for j in jobs] == [False, True] and jobs[1].offset_s == 10.0
    assert jobs[0].problem == (
        "every B22 recording within --max-offset 60 s is paired with another A17 recording "
        "(nearest: B22~r0~20240301T010040~0.wav, 40 s apart)")


def test_layout_notes_and_whole_row_problems(tmp_path: Path) -> None:
    night = tmp_path / "night"
    _night(night, "A17", ["20240301T010000", "not-a-time"])
    _night(night, "C05", ["20240301T010000"])
    _touch(night, "loose.wav", ".hidden~r~20240301T010000~0.wav")
    layout = _write(tmp_path / "layout.csv",
                    "sensor_a,sensor_b,distance_m,wave_speed_m_s,material\n"
                    "A17,B22,100,,pvc\n"  # no B22 recordings: one problem row
                    "D1,D2,100,,pvc\n"  # neither: a note
                    "B22,A17,100,1200,\n"  # same sensors as row 1
                    "A17,C05,0,,brass\n"  # bad values
                    "E1,E1,100,1200,\n")
    result = pairs_from_layout(layout, [night], 60.0)
    assert [(j.row, j.problem) for j in result.jobs] == [
        (1, "sensor B22 has no recordings (A17 has 1)"),
        (3, "same sensors as layout row 1"),
        (4, "distance must be positive, not 0 m; unknown pipe material 'brass'; known: "
            + ", ".join(ws.MATERIALS)),
        (5, "sensor_a and sensor_b are the same sensor")]
    assert result.jobs[0].a is None and result.jobs[0].a_label == "A17"
    assert result.notes == [
        "1 recording left out: the name is not sensor~recording~timestamp~gain: loose.wav",
        "1 recording left out: the timestamp in the name cannot be read: "
        "A17~r1~not-a-time~0.wav",
        "1 layout row with recordings of neither sensor: 2 (D1, D2)"]
    assert result.left_out == [night / "loose.wav", night / "A17~r1~not-a-time~0.wav"]
    # a sensor whose recordings are all there but untimed is not said to have none
    _night(night, "B22", ["someday"])
    [first, *_] = pairs_from_layout(layout, [night], 60.0).jobs
    assert first.problem == ("sensor B22 has no recordings with a timestamp that can be read "
                             "(A17 has 1)")


def test_layout_sensors_filter(tmp_path: Path) -> None:
    night = tmp_path / "night"
    for sensor in ("A", "B", "C", "X"):
        _night(night, sensor, ["20240301T010000"])
    layout = _write(tmp_path / "layout.csv",
                    "sensor_a,sensor_b,distance_m,wave_speed_m_s\nA,B,100,1200\nB,C,90,1200\n"
                    "C,D,80,1200\n")
    everything = pairs_from_layout(layout, [night], 60.0)
    assert [(j.sensor_a, j.sensor_b, j.usable) for j in everything.jobs] == [
        ("A", "B", True), ("B", "C", True), ("C", "D", False)]
    assert everything.notes == ["1 sensor with recordings but in no layout row, left out: "
                                "X (1)"]
    # the alerting sensor A with its neighbour; C with both of its
    assert [j.row for j in pairs_from_layout(layout, [night], 60.0, {"A"}).jobs] == [1]
    result = pairs_from_layout(layout, [night], 60.0, {"C", "Z"})
    assert [j.row for j in result.jobs] == [2, 3]
    assert result.notes[-1] == "1 sensor asked for but in no layout row: Z"


def test_layout_file_problems_raise(tmp_path: Path) -> None:
    _night(tmp_path / "night", "A", ["20240301T010000"])
    bad = _write(tmp_path / "layout.csv", "sensor_a,distance_m,material\nA,3,pvc\n")
    with pytest.raises(InputError, match="lacks sensor_b"):
        pairs_from_layout(bad, [tmp_path / "night"], 60.0)
    good = _write(tmp_path / "good.csv", LAYOUT)
    with pytest.raises(InputError, match="no such file or folder"):
        pairs_from_layout(good, [tmp_path / "nowhere"], 60.0)
    with pytest.raises(ConfigError, match="max_offset_s"):
        pairs_from_layout(good, [tmp_path / "night"], -1.0)
