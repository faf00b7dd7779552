"""The `sr-search` command line: parse, call one function, print. Usage errors exit 2."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from search.bench import add_bench_parser, run_bench

EXIT_USAGE = 2


def _workdir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=Path("sr-runs"),
                   help="where runs, data cache, MLflow store and reports live (default: ./sr-runs)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://127.0.0.1:5000 "
                                          "(default: the workdir's sqlite store)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sr-search", description="Hyperparameter search for 4x super-resolution "
        "(32x32 -> 128x128): Ray Tune schedules, Optuna samples, ASHA prunes, MLflow tracks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="estimate the cost of a study, run it, print the best trial, "
                                     "write the report", description="Run a study end to end.")
    run.add_argument("--study", required=True, help="a bundled study (demo, residual, refiner) or a .toml path")
    run.add_argument("--data", help="override the study's data: 'embedded' or a folder")
    _workdir_args(run)
    run.add_argument("--address", help="join an existing Ray cluster (e.g. 'auto' or ray://host:10001)")
    run.add_argument("--storage", help="Optuna storage URL for multi-machine studies "
                                       "(e.g. postgresql://user:pw@host/db; default: a journal file in the workdir)")
    run.add_argument("--resume", action="store_true", help="continue a study that was interrupted")
    run.add_argument("--dry-run", action="store_true", help="print the cost estimate and stop")
    run.add_argument("--epochs", type=int, help="override [train].epochs")
    run.add_argument("--trials", type=int, help="override [search].trials")
    run.add_argument("--cpus-per-trial", type=float, help="override [resources].cpus_per_trial")
    run.add_argument("--gpus-per-trial", type=float, help="override [resources].gpus_per_trial (fractions allowed)")
    run.add_argument("--max-concurrent", type=int, help="override [resources].max_concurrent")
    run.add_argument("--tflops", type=float, help="estimate for a device with this effective training "
                                                 "TFLOP/s instead of measuring this machine's")
    run.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")

    status = sub.add_parser("status", help="a table of a study's trials from MLflow")
    status.add_argument("--study", required=True)
    _workdir_args(status)

    report = sub.add_parser("report", help="write the HTML report of one or more studies")
    report.add_argument("--study", action="append", required=True,
                        help="a study name; repeat to compare studies in one report")
    _workdir_args(report)
    report.add_argument("--out", type=Path, help="output file (default: WORKDIR/reports/<study>.html)")

    ui = sub.add_parser("ui", help="serve the MLflow UI for the workdir's store on 127.0.0.1")
    ui.add_argument("--workdir", type=Path, default=Path("sr-runs"))
    ui.add_argument("--port", type=int, default=5000)

    predict = sub.add_parser("predict", help="upscale a folder of images with a study's best model")
    predict.add_argument("--study", required=True)
    predict.add_argument("--input", required=True, type=Path, help="folder of LR images (png/jpg)")
    predict.add_argument("--output", required=True, type=Path, help="folder for the 4x PNGs (same names)")
    predict.add_argument("--self-ensemble", action="store_true", help="average the 8 rot90/flip variants")
    predict.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    _workdir_args(predict)

    add_bench_parser(sub)
    return parser


def _cmd_run(args) -> int:
    from search.engine import RunOptions, run_study
    from search.study import load_study
    overrides = {"data": args.data, "epochs": args.epochs, "trials": args.trials,
                 "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
                 "max_concurrent": args.max_concurrent}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    study = load_study(args.study).with_overrides(**overrides)
    opts = RunOptions(workdir=args.workdir, tracking_uri=args.tracking_uri, address=args.address,
                      storage=args.storage, resume=args.resume, dry_run=args.dry_run, tflops=args.tflops,
                      report=not args.no_report, overrides=overrides)
    outcome = run_study(study, opts)
    if args.dry_run:
        return 0
    print("trials       : " + ", ".join(f"{n} {s}" for s, n in sorted(outcome.statuses.items())))
    if outcome.best:
        b = outcome.best
        print(f"best         : {b['name']}  val/mse {b['best/val_mse']:.5f}  "
              f"val/psnr {b.get('best/val_psnr', float('nan')):.2f} dB  val/ssim {b.get('best/val_ssim', float('nan')):.4f}"
              f"  ({b['status']}, {int(b.get('epochs_run', 0))} epochs)")
        if outcome.baseline_psnr is not None:
            print(f"vs bicubic   : {b.get('best/val_psnr', float('nan')) - outcome.baseline_psnr:+.2f} dB "
                  f"(bicubic {outcome.baseline_psnr:.2f} dB)")
    print(f"wall time    : {outcome.wall_seconds / 60:.1f} min")
    return 0


def _cmd_status(args) -> int:
    from mlflow.tracking import MlflowClient

    from search.study import StudyError
    from search.tracking import latest_study_run, study_trials
    from search.workdir import Workdir
    client = MlflowClient(Workdir(args.workdir).tracking_uri(args.tracking_uri))
    found = latest_study_run(client, args.study)
    if found is None:
        raise StudyError(f"no runs of study {args.study!r} in {Workdir(args.workdir).tracking_uri(args.tracking_uri)}")
    trials = sorted(study_trials(client, *found), key=lambda t: t.get("best/val_mse", float("inf")))
    print(f"{'name':<34} {'status':<14} {'epochs':>6} {'val/mse':>9} {'val/psnr':>9} {'val/ssim':>8} {'seconds':>8}")
    for t in trials:
        print(f"{t['name']:<34} {t['status']:<14} {int(t.get('epochs_run', 0)):>6} "
              f"{t.get('best/val_mse', float('nan')):>9.5f} {t.get('best/val_psnr', float('nan')):>9.2f} "
              f"{t.get('best/val_ssim', float('nan')):>8.4f} {t.get('wall_seconds', float('nan')):>8.1f}")
    return 0


def _cmd_report(args) -> int:
    from search.engine import write_report
    from search.workdir import Workdir
    workdir = Workdir(args.workdir)
    out = args.out or workdir.report_path("+".join(args.study))
    write_report(workdir.tracking_uri(args.tracking_uri), args.study, out)
    return 0


def _cmd_ui(args) -> int:
    from search.workdir import Workdir
    workdir = Workdir(args.workdir)
    if not (workdir.root / "mlflow.db").exists():
        print(f"error: no MLflow store in {workdir.root}; run a study first", file=sys.stderr)
        return EXIT_USAGE
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", workdir.mlflow_uri,
           "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0


def _cmd_predict(args) -> int:
    from search.predict import predict_folder
    from search.workdir import Workdir
    predict_folder(Workdir(args.workdir).tracking_uri(args.tracking_uri), args.study, args.input,
                   args.output, self_ensemble=args.self_ensemble, device=args.device)
    return 0


COMMANDS = {"run": _cmd_run, "status": _cmd_status, "report": _cmd_report, "ui": _cmd_ui,
            "predict": _cmd_predict, "bench": run_bench}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args = build_parser().parse_args(argv)
    if args.command == "bench":  # needs none of Ray, Optuna, MLflow: it runs on a bare GPU box too
        return run_bench(args)
    from search.study import StudyError
    from search.tracking import TrackingError
    from sr_core.data import DataError
    user_errors: tuple[type[BaseException], ...] = (StudyError, DataError, TrackingError)
    try:
        from reports import ReportError
        user_errors += (ReportError,)
    except ImportError:
        pass
    try:
        return COMMANDS[args.command](args)
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
