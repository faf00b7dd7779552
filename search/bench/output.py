"""What every benchmark prints and writes: the machine and the versions beside each figure, an
aligned text table, and a JSON file. Imports torch only when asked about the machine."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import torch
    info = {"cpu": _cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "platform": platform.platform()}
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    gpu_capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count())
    return info


def versions() -> dict:
    import numpy
    import PIL
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def envelope(benchmark: str, device: str, command: list[str] | None = None) -> dict:
    return {"benchmark": benchmark, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(command) if command else None, "machine": machine_info(device),
            "versions": versions()}


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; columns are (key, header, format), e.g. ("speedup", "x", ".2f")."""
    def cell(row, key, fmt):
        value = row.get(key)
        if value is None:
            return "-"
        return format(value, fmt) if isinstance(value, (int, float)) and fmt else str(value)
    body = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max(len(x) for x in col) for col in zip(heads, *body)]
    line = lambda xs: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(xs, widths)))
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in body])


def default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"
