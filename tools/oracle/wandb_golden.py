"""Write a W&B offline run with the real wandb package, the calls transformers' WandbCallback makes.

    python tools/oracle/wandb_golden.py train/wandb/testdata

wandb.init (project, name), config.update, the two define_metric calls (train/global_step as the x axis of
every metric), two history rows, the end-of-training summary scalars, finish. The .wandb file is copied to
OUT/python_offline.wandb: train/wandb's tests read it with their reader (so the framing and record decoding
are checked on wandb's own bytes) and compare its metric records with the Go writer's byte for byte.
"""

import glob
import os
import shutil
import sys
import tempfile


def main(out: str) -> None:
    work = tempfile.mkdtemp()
    os.environ.update({"WANDB_MODE": "offline", "WANDB_DIR": work, "WANDB_SILENT": "true"})
    import wandb

    # No machine description (paths, host, hardware) in a committed file.
    settings = wandb.Settings(x_disable_meta=True, x_disable_stats=True, disable_git=True, save_code=False, host="golden")
    run = wandb.init(project="handbook", name="tiny-sft", id="golden01", settings=settings)
    wandb.config.update({"learning_rate": 0.002, "output_dir": "out/tiny-sft", "report_to": ["wandb"]}, allow_val_change=True)
    wandb.define_metric("train/global_step")
    wandb.define_metric("*", step_metric="train/global_step", step_sync=True)
    wandb.log({"train/loss": 2.5, "train/learning_rate": 0.002, "train/grad_norm": 1.25, "train/epoch": 0.5, "train/global_step": 1})
    wandb.log({"eval/loss": 2.25, "train/epoch": 1, "train/global_step": 2})
    wandb.run.summary["train_loss"] = 2.4
    run.finish()
    wandb.teardown()  # the service flushes the transaction log when it stops
    (path,) = glob.glob(os.path.join(work, "wandb", "offline-run-*", "run-golden01.wandb"))
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(path, os.path.join(out, "python_offline.wandb"))
    print(f"wrote {os.path.join(out, 'python_offline.wandb')} ({os.path.getsize(path)} bytes) with wandb {wandb.__version__}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: wandb_golden.py OUT_DIR")
    main(sys.argv[1])
