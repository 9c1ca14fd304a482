"""``python -m gan.upscale``: see :mod:`gan.upscale.cli`."""

from gan.upscale.cli import main
from neuropaint.logs import run_cli

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
