"""``leakhunter locate``: where between two sensors a leak lies (the leak correlator).

Three ways in: one pair (``A B --distance``), a pairs CSV (``--pairs``), or a sensor
layout with recording folders (``--layout --recordings``) that pairs recordings of
neighbouring sensors by their names' timestamps. ``--calibrate-at`` turns a pair with a
source at a known position into a wave speed instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from ..config import WEIGHTINGS, LocateConfig
from ..errors import ConfigError
from ..runtime.outputs import refuse_clashes
from .flags import (
    common,
    device_flag,
    low_high,
    names,
    option,
    optional,
    optional_float,
    settings,
)

SHOWN = 20  # located pairs printed; the CSV holds them all
# the speeds a calibration without --material allows for: plastic to steel mains (m/s)
ANY_PIPE_M_S = (300.0, 250.0, 1500.0)
# one-pair flags and their argparse names: refused with --pairs or --layout, whose rows
# carry their own
ONE_PAIR_FLAGS = {"--distance": "distance", "--wave-speed": "wave_speed",
                  "--material": "material", "--diameter": "diameter", "--wall": "wall"}


def add_locate(sub: Any) -> None:
    p = sub.add_parser(
        "locate", help="where between two sensors the leak lies (leak correlator)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Correlate synchronised recordings of two sensors on one pipe and place the "
            "common source between them: position from A (m) with an interval, and a "
            "status: located, outside (at or beyond a sensor), no correlation.", 79),
        epilog="examples:\n"
               "  leakhunter locate A.wav B.wav --distance 120 --material 'ductile iron'\n"
               "  leakhunter locate A.wav B.wav --distance 120 --wave-speed 1250 "
               "--plot pair.png\n"
               "  leakhunter locate --pairs pairs.csv --out locations.csv\n"
               "  leakhunter locate --layout sensors.csv --recordings night/ "
               "--out locations.csv\n"
               "  leakhunter locate A.wav B.wav --distance 120 --calibrate-at 30 "
               "--material pvc")
    p.add_argument("a", nargs="?", metavar="A",
                   help="recording of sensor A, for one pair (default: none)")
    p.add_argument("b", nargs="?", metavar="B",
                   help="recording of sensor B, for one pair (default: none)")
    p.add_argument("--distance", type=float, metavar="M",
                   help="metres between the sensors along the pipe, required for one pair "
                        "(default: none)")
    speed = p.add_argument_group("wave speed (one pair; a pairs or layout CSV has its own "
                                 "columns)")
    speed.add_argument("--wave-speed", type=float, metavar="M_S",
                       help="the water-borne wave speed in m/s; wins over --material "
                            "(default: none)")
    speed.add_argument("--material", metavar="NAME",
                       help="pipe material: ductile iron, cast iron, steel, copper, "
                            "asbestos cement, pvc, pe (default: none)")
    speed.add_argument("--diameter", type=float, metavar="MM",
                       help="internal diameter in mm (default: the material's typical main)")
    speed.add_argument("--wall", type=float, metavar="MM",
                       help="wall thickness in mm (default: the material's typical main)")
    speed.add_argument("--calibrate-at", type=float, metavar="X",
                       help="a source (an opened hydrant) lies X m from A: solve for the "
                            "wave speed and print it instead of a position (default: off)")
    many = p.add_argument_group("many pairs")
    many.add_argument("--pairs", metavar="PAIRS.csv",
                      help="CSV of a,b,distance_m and wave_speed_m_s or material, "
                           "optionally diameter_mm,wall_mm; paths relative to its folder "
                           "(default: none)")
    many.add_argument("--layout", metavar="SENSORS.csv",
                      help="CSV of sensor_a,sensor_b,distance_m and wave_speed_m_s or "
                           "material: pairs the --recordings of neighbouring sensors by "
                           "the timestamps in their names (default: none)")
    many.add_argument("--recordings", nargs="+", metavar="FOLDER",
                      help="folders of sensor~recording~timestamp~gain recordings, for "
                           "--layout (default: none)")
    many.add_argument("--sensors", type=names, metavar="S1,S2",
                      help="with --layout: only the layout rows naming one of these "
                           "sensors, e.g. tonight's alerts (default: every row)")
    many.add_argument("--strict", action="store_true",
                      help="exit 1 when any pair is bad input (the CSV is written all the "
                           "same) (default: off)")
    d = LocateConfig()
    option(many, ["--max-offset"], "max_offset_s", d,
           "with --layout: recordings of two sensors pair when their timestamps are at "
           "most this many seconds apart")
    p.add_argument("--out", metavar="FILE",
                   help="one pair: a .json file of the result; many pairs: the "
                        "locations .csv, required then (default: none)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="one pair: the correlation along the pipe and the coherence "
                        "in png, svg or pdf (default: none)")
    p.add_argument("--plots", metavar="FOLDER",
                   help="many pairs: draw each pair's plot into FOLDER as pair0001.png ...; "
                        "the CSV's plot column names it, report --locations shows it "
                        "(default: none)")
    method = p.add_argument_group("method")
    method.add_argument("--model", metavar="MODEL",
                        help="a leak detector (best.pt): weight each correlation window by "
                             "how leak-like both sensors sound in it (default: none, "
                             "windows weighted equally)")
    option(method, ["--weighting"], "weighting", d, "cross-spectrum weighting",
           choices=WEIGHTINGS)
    option(method, ["--window"], "window_s", d, "Welch window in seconds (none: from the "
           "span and the slowest wave speed)", type=optional_float)
    option(method, ["--band"], "band_hz", d, "LOW,HIGH Hz to correlate over (none: the "
           "frequencies where the sensors are coherent)", type=optional(low_high))
    option(method, ["--min-quality"], "min_quality", d, "peak quality below which a pair "
           "has no correlation (independent noise stands at about 4)")
    option(method, ["--sample-rate"], "sample_rate", d, "rate both recordings are "
           "brought to (none: the higher of the two)", type=optional(int))
    option(method, ["--workers"], "workers", d, "processes decoding recordings (0: one "
           "per CPU core)")
    device_flag(method, "locate", what="where the correlation runs", config=d)
    common(p)
    p.set_defaults(func=run_locate)


def run_locate(args: argparse.Namespace) -> int:
    cfg = settings(LocateConfig, args)
    one = args.a is not None or args.b is not None
    if sum((one, args.pairs is not None, args.layout is not None)) != 1:
        raise ConfigError("give one pair (A B --distance M), --pairs CSV or --layout CSV")
    if one:
        if args.plots:
            raise ConfigError("--plots is for many pairs; one pair draws with --plot FILE")
        if args.strict:
            raise ConfigError("--strict is for many pairs (bad input for one pair is an "
                              "error anyway)")
        return _one_pair(args, cfg)
    if not args.out:
        raise ConfigError("--pairs and --layout write a locations CSV: give --out FILE.csv")
    if args.plot or args.calibrate_at is not None:
        raise ConfigError("--plot and --calibrate-at are for one pair (--plots FOLDER draws "
                          "many)")
    given = [flag for flag, value in ONE_PAIR_FLAGS.items() if getattr(args, value) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: for one pair only; a pairs or layout CSV "
                          f"gives each pair's own (distance_m, wave_speed_m_s or material, "
                          f"diameter_mm, wall_mm)")
    if args.sensors is not None and (args.pairs or not args.sensors):
        raise ConfigError("--sensors names the sensors of --layout rows to keep: give at "
                          "least one name" if args.layout else "--sensors is for --layout")
    refuse_clashes([("--out", args.out)], [("", args.pairs), ("", args.layout)],
                   "write the locations elsewhere", ConfigError)
    return _many_pairs(args, cfg)


def _one_pair(args: argparse.Namespace, cfg: LocateConfig) -> int:
    from ..locate.pairing import resolve_speed
    from ..locate.run import locate_pair
    from ..locate.wave_speed import check_distance
    from ..runtime.devices import resolve
    from ..runtime.figures import format_of

    if args.a is None or args.b is None or args.distance is None:
        raise ConfigError("one pair needs both recordings and --distance M")
    check_distance(args.distance)
    if args.plot:
        if args.calibrate_at is not None:
            raise ConfigError("--calibrate-at prints a wave speed, not a position to draw: "
                              "run again with --wave-speed SPEED --plot FILE to draw the "
                              "pair at the speed found")
        format_of(args.plot)  # an unknown format is said before the work, not after
    refuse_clashes([("--out", args.out), ("--plot", args.plot)],
                   [("A", args.a), ("B", args.b), ("--model", args.model)],
                   "write it elsewhere", ConfigError)
    device = resolve(cfg.device, "locate").device
    if args.calibrate_at is not None:
        return _calibrate(args, cfg, device)
    speed = resolve_speed(args.wave_speed, args.material, args.diameter, args.wall)
    result = locate_pair(args.a, args.b, args.distance, speed, cfg, device,
                         curves=bool(args.plot), detector=_detector(args, cfg, [args.a, args.b]))
    for note in result.notes:
        print(f"note: {note}")
    _print_location(result)
    if args.out:
        _write_json(args.out, result.as_dict())
        print(f"wrote {args.out}")
    if args.plot:
        from ..locate.plot import plot_pair

        plot_pair(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _calibrate(args: argparse.Namespace, cfg: LocateConfig, device: Any) -> int:
    """``--calibrate-at X``: the wave speed from a source X m from A, printed (and written
    to ``--out`` as JSON)."""
    from ..locate.pairing import resolve_speed
    from ..locate.run import calibrate_speed
    from ..locate.wave_speed import WaveSpeed

    given = args.wave_speed is not None or args.material
    guess = (resolve_speed(args.wave_speed, args.material, args.diameter, args.wall)
             if given else WaveSpeed(*ANY_PIPE_M_S, "any pipe"))
    cal = calibrate_speed(args.a, args.b, args.distance, args.calibrate_at, cfg, device,
                          guess)
    loc = cal.result.location
    assert loc.delay_s is not None and loc.delay_error_s is not None  # calibrate_speed's
    for note in cal.result.notes:
        print(f"note: {note}")
    print(f"delay {loc.delay_s * 1e3:+.3f} ms ± {loc.delay_error_s * 1e3:.3f} ms (peak "
          f"quality {loc.quality:.1f})")
    high = f"{cal.high_m_s:.0f}" if cal.high_m_s < float("inf") else "any higher speed"
    print(f"wave speed {cal.speed_m_s:.0f} m/s ({cal.low_m_s:.0f} to {high} within the "
          f"delay's interval; a source {args.calibrate_at:g} m from A on a "
          f"{args.distance:g} m span)")
    if not guess.low <= cal.speed_m_s <= guess.high:
        print(f"note: {cal.speed_m_s:.0f} m/s lies outside {guess.low:.0f} to "
              f"{guess.high:.0f} m/s ({guess.source}): check the distance along the pipe "
              f"and the source's position")
    if args.out:
        _write_json(args.out, cal.as_dict())
        print(f"wrote {args.out}")
    return 0


def _detector(args: argparse.Namespace, cfg: LocateConfig, files: list[str]) -> Any:
    """The recordings' segment timelines from ``--model``, or ``None`` without one."""
    if not args.model:
        return None
    from ..locate.detector import timelines

    print(f"weighting windows by {args.model} over {len(set(files))} recordings")
    return timelines(args.model, files, device=cfg.device, workers=cfg.workers)


def _print_location(result: Any) -> None:
    loc = result.location
    print(f"status      {loc.status}" + (f" ({loc.reason})" if loc.reason else ""))
    if loc.position_m is not None:
        print(f"position    {loc.position_m:.1f} m from A (interval {loc.low_m:.1f} to "
              f"{loc.high_m:.1f} m) on a {result.distance_m:g} m span")
        print(f"delay       {loc.delay_s * 1e3:+.3f} ms ± {loc.delay_error_s * 1e3:.3f} ms "
              f"(t_A - t_B)")
    span = (f" (range {loc.speed_low_m_s:.0f} to {loc.speed_high_m_s:.0f})"
            if loc.speed_low_m_s != loc.speed_high_m_s else "")  # (a given speed has none)
    print(f"wave speed  {loc.wave_speed_m_s:.0f} m/s{span}: {result.speed.source}")
    band = (f", band {loc.band_hz[0]:.3g} to {loc.band_hz[1]:.4g} Hz" if loc.band_hz else "")
    print(f"peak        quality {loc.quality:.1f}, coherence {loc.coherence:.3f}{band}, "
          f"window {loc.window_s:g} s over {result.seconds:.1f} s")


def _write_json(path: str, data: dict[str, Any]) -> None:
    from ..runtime import safe_write

    safe_write.write_text(Path(path), json.dumps(data, indent=2) + "\n",
                          f"writing {Path(path).name}")


def _many_pairs(args: argparse.Namespace, cfg: LocateConfig) -> int:
    from ..locate.estimate import BAD_INPUT
    from ..locate.pairing import pairs_from_layout, read_pairs
    from ..locate.run import locate_jobs, status_counts, write_locations
    from ..runtime.devices import resolve

    if args.pairs:
        jobs = read_pairs(args.pairs)
    else:
        if not args.recordings:
            raise ConfigError("--layout pairs the recordings in --recordings FOLDER ...")
        laid = pairs_from_layout(args.layout, args.recordings, cfg.max_offset_s,
                                 set(args.sensors) if args.sensors else None)
        for note in laid.notes:
            print(f"note: {note}")
        jobs = laid.jobs
    if not jobs:
        raise ConfigError("no pairs to locate")
    device = resolve(cfg.device, "locate").device
    files = [str(p) for j in jobs if not j.problem for p in (j.a, j.b)]
    detector = _detector(args, cfg, files)
    plots = Path(args.plots) if args.plots else None
    # plots are drawn into a hidden folder inside FOLDER and moved in only when every pair
    # is done: an interrupted run leaves neither a CSV nor a part of its plots
    stage = None
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".locating-", dir=plots))
    try:
        rows = locate_jobs(jobs, cfg, device, stage, detector)
        for row in rows:  # as the CSV's folder sees them, so that the two move together
            if row["plot"] and plots is not None:
                drawn = plots / Path(row["plot"]).name
                os.replace(row["plot"], drawn)
                row["plot"] = os.path.relpath(drawn.resolve(), Path(args.out).resolve().parent)
        write_locations(rows, args.out)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    counts = ", ".join(f"{n} {status}" for status, n in status_counts(rows))
    print(f"located {len(rows)} pair{'s' if len(rows) != 1 else ''} ({counts}) -> {args.out}")
    located = [row for row in rows if row["status"] == "located"]
    for row in located[:SHOWN]:
        print(f"  {Path(row['a']).name} ~ {Path(row['b']).name}: {row['position_m']:g} m "
              f"from A ({row['low_m']:g} to {row['high_m']:g}) of {row['distance_m']:g} m")
    if len(located) > SHOWN:
        print(f"  ... and {len(located) - SHOWN} more located (see {args.out})")
    return 1 if args.strict and any(row["status"] == BAD_INPUT for row in rows) else 0
