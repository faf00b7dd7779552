"""The `sr-search` command line: parse, call one function, print. Usage errors exit 2."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from search.bench.cli import add_bench_parser, run_bench
from sr_core.contract import DEFAULT_WORKDIR

EXIT_USAGE = 2


def _workdir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=Path(DEFAULT_WORKDIR),
                   help="where runs, data cache, MLflow store and reports live (default: ./sr-runs)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://127.0.0.1:5000 "
                                          "(default: the workdir's sqlite store)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sr-search", description="Hyperparameter search for 4x super-resolution "
        "(32x32 -> 128x128): Ray Tune schedules, Optuna samples, synchronous halving (or ASHA) stops the losers early, MLflow tracks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    status = sub.add_parser("status", help="a table of a study's trials (repairs runs a killed driver left running)")
    status.add_argument("--study", required=True)
    _workdir_args(status)
    report = sub.add_parser("report", help="write the HTML report of one or more studies")
    report.add_argument("--study", action="append", required=True,
                        help="a study name; repeat to compare studies in one report")
    _workdir_args(report)
    report.add_argument("--out", type=Path, help="output file (default: WORKDIR/reports/<study>.html)")
    ui = sub.add_parser("ui", help="serve the MLflow UI for the workdir's store on 127.0.0.1, on the training runs")
    ui.add_argument("--workdir", type=Path, default=Path(DEFAULT_WORKDIR))
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--study", help="print the URL of this study's run (default: all training runs)")
    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on a study's Optuna storage (127.0.0.1)")
    dash.add_argument("--study", required=True)
    dash.add_argument("--workdir", type=Path, default=Path(DEFAULT_WORKDIR))
    dash.add_argument("--port", type=int, default=8080)
    dash.add_argument("--storage", help="the study's Optuna storage URL, when it holds a password")
    _predict_parser(sub)
    _evaluate_parser(sub)
    add_bench_parser(sub)
    return parser


def _run_parser(sub) -> None:
    run = sub.add_parser("run", help="estimate the cost of a study, run it, print the best trial, "
                                     "write the report", description="Run a study end to end.")
    run.add_argument("--study", required=True, help="a bundled study (demo, residual, refiner) or a .toml path")
    run.add_argument("--data", help="override the study's data: 'embedded' or a folder")
    run.add_argument("--val-data", metavar="DIR", help="a folder of val photos for an HR-only --data folder "
                     "(default: every 5th of its photos); cut into fixed 128x128 patches")
    run.add_argument("--full-val", metavar="DIR", help="override [study].full_val: a folder of full-size images "
                                                       "(e.g. Set5) scored in the loop as full/psnr_y, full/ssim_y")
    _workdir_args(run)
    run.add_argument("--address", help="join an existing Ray cluster: 'auto' (the one `ray start` made here), "
                                       "HOST:PORT or ray://HOST:PORT (default: a private Ray on this machine)")
    run.add_argument("--storage", help="Optuna storage URL for multi-machine studies "
                                       "(e.g. postgresql://user:pw@host/db; default: a journal file in the workdir)")
    run.add_argument("--ray-storage", help="Tune's storage for the study's experiment and trial checkpoints: "
                                           "a folder every node can read (or a URI Ray accepts, e.g. s3://...); "
                                           "default: WORKDIR/studies/NAME/ray")
    run.add_argument("--resume", action="store_true",
                     help="continue a study that was interrupted or killed: trials that ended are kept, "
                          "unfinished ones continue from their last epoch checkpoint")
    run.add_argument("--dry-run", action="store_true", help="print the cost estimate and stop")
    run.add_argument("--yes", action="store_true", help="start even when the estimate is far beyond a working day")
    run.add_argument("--epochs", type=int, help="override [train].epochs")
    run.add_argument("--trials", type=int, help="override [search].trials")
    run.add_argument("--cpus-per-trial", type=float, help="override [resources].cpus_per_trial")
    run.add_argument("--gpus-per-trial", type=_gpus, metavar="G|auto",
                     help="override [resources].gpus_per_trial (fractions allowed; auto: per config, from its "
                          "predicted memory)")
    run.add_argument("--max-concurrent", type=int, help="override [resources].max_concurrent")
    run.add_argument("--no-questions", dest="questions", action="store_false", default=None,
                     help="run the search alone: do not carry the study's [questions] to the full budget")
    run.add_argument("--tflops", type=float, help="estimate for a device with this effective training "
                                                 "TFLOP/s instead of measuring this machine's")
    run.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")


def _predict_parser(sub) -> None:
    predict = sub.add_parser("predict", help="upscale a folder of images with a study's model: its final step's "
                                              "when it has one, else the search's best trial")
    predict.add_argument("--study", required=True)
    predict.add_argument("--input", required=True, type=Path, help="folder of LR images (png/jpg)")
    predict.add_argument("--output", required=True, type=Path, help="folder for the 4x PNGs (same names)")
    predict.add_argument("--self-ensemble", action="store_true", help="average the 8 rot90/flip variants")
    predict.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    _workdir_args(predict)


EVALUATE_HELP = """\
Score a study's models on full-size benchmark folders the way SR papers do, so the figures can be
set beside published ones: HR mod-cropped to a multiple of 4, LR by MATLAB's bicubic imresize,
whole-image inference, PSNR-Y and SSIM-Y (Y of BT.601 YCbCr, 4 pixels cropped from each border,
mean over images) and RGB PSNR, after the bicubic baseline on the same LR. The table is printed and
logged to each trial's MLflow run as eval/<folder>/psnr_y, ssim_y, psnr (the ensemble as
eval/<folder>/self_ensemble/..., bicubic on the study run as eval/<folder>/bicubic/...), and the
report gets a section of its own. Bad input (an unreadable image, an empty folder, an lr/ file
without its HR) exits 2 naming the file, with nothing logged.

Write the benchmark folder that ships with sr-search (4 scikit-image photos at full size) with:
  python -m sr_core.benchmark_photos DIR [--lr]"""


def _evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="score a study's best (or top) models on full-size benchmark folders "
                                         "with papers' conventions (PSNR-Y, SSIM-Y, x8 self-ensemble as +)",
                        description=EVALUATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--study", required=True, help="the study's name (its latest run in the tracking store)")
    ev.add_argument("--trials", nargs="+", default=["best"], metavar="PICK",
                    help="best (the study's best trial, as `run` names it), top:K (the K best trials that ran "
                         "to their end, by the study's metric), final (the [final] step's model), or run "
                         "names (pruned trials too); default: best")
    ev.add_argument("--data", nargs="+", required=True, type=Path, metavar="DIR",
                    help="benchmark folders of full-size HR images (.png/.jpg/.jpeg/.bmp, any size, gray "
                         "included); the folder's name keys its figures, e.g. Set5 -> eval/Set5/psnr_y")
    ev.add_argument("--self-ensemble", action="store_true",
                    help="also score each trial's x8 rot90/flip ensemble: a second row, labelled NAME+")
    ev.add_argument("--lr-kernel", choices=("matlab", "pil", "given"), default="matlab",
                    help="how the LR is made: matlab (MATLAB's bicubic imresize, the papers' LR; default), pil "
                         "(Pillow's bicubic), given (read DIR/lr/NAME.* or DIR/LR/NAME.*, exactly 1/4 of the mod-cropped HR)")
    ev.add_argument("--tile", type=int, metavar="PX",
                    help="upscale in tiles of PX LR pixels (exact: tiles overlap by the net's receptive "
                         "radius); default: the largest whose activations fit 8 GiB")
    ev.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    ev.add_argument("--no-report", action="store_true", help="do not rewrite the study's HTML report")
    _workdir_args(ev)


def _resume_command(args) -> str:
    """The exact command that resumes this study (flags that are not stored with it included)."""
    parts = ["sr-search", "run", "--study", str(args.study), "--resume"]
    if Path(args.workdir) != Path(DEFAULT_WORKDIR):
        parts += ["--workdir", str(args.workdir)]
    if args.address:
        parts += ["--address", args.address]
    return shlex.join(parts)


def _cmd_run(args) -> int:
    from search.run.engine import RunOptions, run_study
    from search.run.interrupts import Interrupted
    from search.study import load_study
    overrides = {"data": args.data, "val_data": args.val_data, "full_val": args.full_val, "epochs": args.epochs,
                 "trials": args.trials,
                 "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
                 "max_concurrent": args.max_concurrent, "questions": args.questions}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    study = load_study(args.study).with_overrides(**overrides)
    opts = RunOptions(workdir=args.workdir, tracking_uri=args.tracking_uri, address=args.address,
                      storage=args.storage, ray_storage=args.ray_storage, resume=args.resume,
                      dry_run=args.dry_run, tflops=args.tflops, report=not args.no_report, yes=args.yes,
                      overrides=overrides, resume_command=_resume_command(args))
    try:
        outcome = run_study(study, opts)
    except Interrupted as exc:
        print(f"interrupted  : {exc}; no report written. Resume with:\n  {opts.resume_command}", flush=True)
        return exc.exit_code
    if args.dry_run:
        return 0
    _print_outcome(outcome)
    return 0


def _print_outcome(outcome) -> None:
    """What `run` says at its end: statuses, the best with its noise, the final model, the cost."""
    print("trials       : " + ", ".join(f"{n} {s}" for s, n in sorted(outcome.statuses.items())))
    if outcome.best:
        b = outcome.best
        print(f"best         : {_scores(b)}  val/ssim {b.get('best/val_ssim', float('nan')):.4f}"
              f"  ({b['status']}, {int(b.get('epochs_run', 0))} epochs)")
        noise = outcome.noise  # each with its 95% paired bootstrap interval over the val images
        if "best_vs_bicubic" in noise:
            print(f"vs bicubic   : {noise['best_vs_bicubic'].text()} (95% interval over the val images)")
        elif outcome.baseline_psnr is not None:
            print(f"vs bicubic   : {b.get('best/val_psnr', float('nan')) - outcome.baseline_psnr:+.2f} dB "
                  f"(bicubic {outcome.baseline_psnr:.2f} dB; no per-image values, noise unknown)")
        if "runner_up" in noise:
            name, g = noise["runner_up"]
            verdict = "better than" if g.verdict == "better" else "tied within noise with"
            print(f"runner-up    : the best is {verdict} {name} ({g.text()}); tied with the best: "
                  f"{len(noise['tied'])} config(s)" + (f" ({', '.join(noise['tied'][:6])}"
                                                       f"{', ...' if len(noise['tied']) > 6 else ''})"
                                                       if len(noise["tied"]) > 1 else ""))
        if outcome.final:
            f = outcome.final
            print(f"final        : {_scores(f)}  ({f['status']}, "
                  f"{int(f.get('epochs_run', 0))} epochs; the model predict uses, and evaluate --trials final)")
            if "final_vs_bicubic" in noise:
                against = noise["final_vs_best"]
                words = {"better": "better", "tied": "tied within noise", "worse": "worse"}[against.verdict]
                print(f"final gain   : {noise['final_vs_bicubic'].text()} over bicubic on val; "
                      f"{against.text()} over the search's best ({words})")
            elif outcome.baseline_psnr is not None:
                print(f"final gain   : {f.get('best/val_psnr', float('nan')) - outcome.baseline_psnr:+.2f} dB "
                      "over bicubic on val")
    else:
        print("best         : none (no trial completed or early-stopped; see `sr-search status`)")
    e = outcome.estimate
    unit = "trial-slot-hours" if e.device == "cpu" else "GPU-hours"
    print(f"device time  : {outcome.device_hours:.3g} {unit} spent, {e.device_hours:.3g} estimated "
          f"({e.schedule} schedule" + (f", x{e.device_hours / outcome.device_hours:.2f} the actual" if
                                       outcome.device_hours > 0 else "") + ")")
    print(f"wall time    : {outcome.wall_seconds / 60:.1f} min")


def _cmd_status(args) -> int:
    from mlflow.tracking import MlflowClient

    from search.errors import StudyError
    from search.state import StudyState
    from search.tracking import latest_study_run, mark_unfinished, study_trials
    from search.workdir import Workdir, driver_alive
    from sr_core.contract import ROLE_AUDIT, ROLE_FINAL
    workdir = Workdir(args.workdir)
    uri = workdir.tracking_uri(args.tracking_uri)
    if not args.tracking_uri and not (workdir.root / "mlflow.db").exists():
        raise StudyError(f"no runs of study {args.study!r}: {workdir.root} has no MLflow store")
    client = MlflowClient(uri)
    found = latest_study_run(client, args.study)
    if found is None:
        raise StudyError(f"no runs of study {args.study!r} in {workdir.root}")
    if not driver_alive(workdir.study_dir(args.study)):
        # No driver holds the study: whatever still says running was left by one that died.
        from search.run.cluster import reap_orphans
        state = StudyState.load(workdir.study_dir(args.study))
        reap_orphans(state.ray_session_dir if state else None)
        repaired = mark_unfinished(client, *found, "the driver stopped while it ran")
        if repaired:
            print(f"repaired {len(repaired)} run(s) left running by a stopped driver: now interrupted "
                  f"(resume with sr-search run --study {args.study} --resume)")
    trials = sorted(study_trials(client, *found), key=lambda t: t.get("best/val_mse", float("inf")))
    print(f"{'name':<34} {'status':<14} {'epochs':>6} {'val/mse':>9} {'val/psnr':>9} {'val/ssim':>8} {'seconds':>8}  reason")
    for t in trials:
        _status_row(t)
    # the runs that are not the search's trials: the pruning audit's and the final step's
    for role, heading in ((ROLE_AUDIT, "pruning audit: pruned trials resumed to the full budget"),
                          (ROLE_FINAL, "final step: the search's best trained again")):
        rows = study_trials(client, *found, role)
        if rows:
            print(f"-- {heading}")
            for t in rows:
                _status_row(t)
    return 0


def _status_row(t: dict) -> None:
    print(f"{t['name']:<34} {t['status']:<14} {int(t.get('epochs_run', 0)):>6} "
          f"{t.get('best/val_mse', float('nan')):>9.5f} {t.get('best/val_psnr', float('nan')):>9.2f} "
          f"{t.get('best/val_ssim', float('nan')):>8.4f} {t.get('wall_seconds', float('nan')):>8.1f}"
          f"  {t.get('reason') if t.get('reason') not in (None, '', '-') else ''}")


def _cmd_report(args) -> int:
    from search.run.closing import write_report
    from search.workdir import Workdir
    workdir = Workdir(args.workdir)
    out = args.out or workdir.report_path("+".join(args.study))
    write_report(workdir.tracking_uri(args.tracking_uri), args.study, out)
    return 0


def _cmd_ui(args) -> int:
    from search.uis import mlflow_ui
    from search.workdir import Workdir
    return mlflow_ui(Workdir(args.workdir), args.port, args.study)


def _cmd_dashboard(args) -> int:
    from search.uis import dashboard
    from search.workdir import Workdir
    return dashboard(Workdir(args.workdir), args.study, args.port, args.storage)


def _scores(row: dict) -> str:
    """A trial's (or the final model's) name, best val/mse and val/psnr (and full/psnr_y with a full-size
    val), as `run` prints them."""
    full = f"  full/psnr_y {row['best/full_psnr_y']:.2f} dB" if row.get("best/full_psnr_y") is not None else ""
    return (f"{row['name']}  val/mse {row['best/val_mse']:.5f}  val/psnr {row.get('best/val_psnr', float('nan')):.2f} dB"
            + full)


def _gpus(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _cmd_predict(args) -> int:
    from search.apply.predict import predict_folder
    from search.workdir import Workdir
    predict_folder(Workdir(args.workdir).tracking_uri(args.tracking_uri), args.study, args.input,
                   args.output, self_ensemble=args.self_ensemble, device=args.device)
    return 0


def _cmd_evaluate(args) -> int:
    from search.errors import StudyError
    from search.workdir import Workdir
    if args.tile is not None and args.tile < 1:
        raise StudyError(f"--tile {args.tile}: a tile is at least 1 LR pixel")
    workdir = Workdir(args.workdir)
    if not args.tracking_uri and not (workdir.root / "mlflow.db").exists():
        raise StudyError(f"no runs of study {args.study!r}: {workdir.root} has no MLflow store")
    from search.apply.eval_table import format_table
    from search.apply.evaluate import EvalOptions, evaluate_study
    uri = workdir.tracking_uri(args.tracking_uri)
    options = EvalOptions(data=tuple(args.data), trials=tuple(args.trials), self_ensemble=args.self_ensemble,
                          lr_kernel=args.lr_kernel, tile=args.tile, device=args.device)
    rows = evaluate_study(uri, args.study, options)
    print(format_table(rows, args.lr_kernel), flush=True)
    if not args.no_report:
        from search.run.closing import write_report
        write_report(uri, [args.study], workdir.report_path(args.study))
    return 0


COMMANDS = {"run": _cmd_run, "status": _cmd_status, "report": _cmd_report, "ui": _cmd_ui,
            "dashboard": _cmd_dashboard, "predict": _cmd_predict, "evaluate": _cmd_evaluate, "bench": run_bench}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix (exit 2). Imported without Ray, Optuna or MLflow; the report's own
    error only exists once the reports package was imported (which is the only way to raise it)."""
    from search.errors import StudyError
    from sr_core.images import DataError
    errors: tuple[type[BaseException], ...] = (StudyError, DataError)
    if "reports.load" in sys.modules:
        errors += (sys.modules["reports.load"].ReportError,)
    return errors


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow prints "View run ... at URL" for every run it ends: noise in our progress, and the URL
    # would carry a tracking password.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # ...and a progress bar for every artifact it downloads (a trial's best.pt for predict, evaluate).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        from search.redaction import redact
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
