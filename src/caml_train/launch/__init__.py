"""Shipped `accelerate launch` configs for multi-GPU stages (`launcher:` in an experiment).

`launcher: fsdp` / `launcher: deepspeed_zero3` (optionally `:N` for N processes, e.g.
`fsdp:4`) expand to `accelerate launch --config_file <shipped yaml> [--num_processes N]`; any
other string is used as the command itself (e.g. `torchrun --nproc_per_node 8`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED = {"fsdp": HERE / "fsdp.yaml", "deepspeed_zero3": HERE / "deepspeed_zero3.yaml"}


def launcher_command(launcher: str) -> list[str]:
    """The command words that run `-m caml_train.cli train ...` under the launcher."""
    name, _, count = launcher.strip().partition(":")
    if name in SHIPPED:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
        cmd.append(str(SHIPPED[name]))
        if count:
            if not count.isdigit() or int(count) < 1:
                from caml_evals.errors import ConfigError

                raise ConfigError(f"launcher {launcher!r}: the process count must be a number")
            cmd += ["--num_processes", count]
        return cmd
    return shlex.split(launcher)
