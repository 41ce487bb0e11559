"""DDP on CPU with 2 processes (gloo): a step on 2 ranks with batch B each equals a step on one
process with batch 2B; a checkpoint written by rank 0 resumes on one process; a run stopped by
wall-clock minutes stops every rank at the same step with the same weights."""

import datetime
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from ddpm_utils import make_schedule
from ddpm_utils.checkpoint import load_checkpoint
from ddpm_utils.extras import TrainConfig, Trainer
from ddpm_utils.unet import UNet, UNetConfig

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)
CONFIGS = {name: TrainConfig(max_steps=2, batch_size=16, warmup_steps=1, optimizer=name) for name in ("adamw", "muon")}


LINEAR = make_schedule("linear", 1000)


def _data():
    return torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir, cfg):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = Trainer(UNet(TINY), LINEAR, cfg, _data())
    trainer.train(max_steps=1, progress=False, checkpoint_path=os.path.join(out_dir, "ddp.pt"))
    trainer.train(progress=False)  # a second step: the first moves only the zero-initialised output layer
    torch.save([p.detach().clone() for p in trainer.model.parameters()], os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("optimizer", list(CONFIGS))
def test_two_ranks_equal_one_process_with_double_batch(tmp_path, optimizer):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), CONFIGS[optimizer]), nprocs=2, join=True)
    torch.manual_seed(0)
    single = Trainer(UNet(TINY), LINEAR, CONFIGS[optimizer], _data())
    single.train(progress=False)
    for rank in range(2):
        ddp_params = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(ddp_params, single.model.parameters()):
            torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    # rank 0 wrote the checkpoint after step 1; resume it on one process and match two straight steps
    resumed = Trainer.resume(tmp_path / "ddp.pt", _data()).train(progress=False)
    assert resumed.step == single.step == 2
    for a, b in zip(resumed.model.parameters(), single.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["ddp.pt", "rank0.pt", "rank1.pt"]


def _timed_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout: a rank left waiting in an all-reduce fails the test instead of hanging it
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = Trainer(UNet(TINY), LINEAR, TrainConfig(max_steps=10**6, batch_size=16, warmup_steps=1), _data())
    if rank == 1:
        time.sleep(1.0)  # the ranks' clocks now differ by a second, as they do when one starts late
    trainer.train(max_minutes=0.05, progress=False)
    torch.save(
        {"step": trainer.step, "lr": trainer.history["lr"], "params": [p.detach() for p in trainer.model.parameters()]},
        os.path.join(out_dir, f"timed{rank}.pt"),
    )
    torch.distributed.destroy_process_group()


def test_minutes_limit_stops_all_ranks_together(tmp_path):
    """The stop and the learning-rate schedule follow rank 0's clock on every rank (with each rank's
    own clock, rank 0 stopped a second early and rank 1 hung in its next all-reduce)."""
    mp.spawn(_timed_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"timed{rank}.pt", weights_only=True) for rank in range(2))
    assert r0["step"] == r1["step"] > 1
    assert r0["lr"] == r1["lr"]
    for a, b in zip(r0["params"], r1["params"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_documented_torchrun_command_equals_one_process(tmp_path):
    """README's launch command, on 2 CPU processes: the same checkpoint as one process with the same
    global batch, one sample grid and one report line (from rank 0), and no stray files. Without dropout: each
    rank draws its own dropout masks, so with dropout the two runs agree in distribution, not weight for weight."""
    args = ["train", "--steps", "4", "--batch-size", "16", "--channels", "16", "--heads", "2", "--quiet"]
    args += ["--dropout", "0", "--sample-every", "2", "--checkpoint-every", "2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run"]  # the `torchrun` script, wherever it is installed
    launch = torchrun + ["--standalone", "--nproc_per_node=2", "-m", "ddpm_utils"]
    ddp_args = launch + args + ["--out", str(tmp_path / "ddp.pt")]
    ddp = subprocess.run(ddp_args, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("trained 4 steps") == 1
    one = subprocess.run([sys.executable, "-m", "ddpm_utils"] + args + ["--out", str(tmp_path / "one.pt")], timeout=300)
    assert one.returncode == 0
    a, b = load_checkpoint(tmp_path / "ddp.pt"), load_checkpoint(tmp_path / "one.pt")
    assert a["step"] == b["step"] == 4
    for key in ("model", "ema"):
        for name in b[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
    grids = {p.name for p in tmp_path.glob("*.png")}
    assert grids == {f"{run}_step{k:06d}.png" for run in ("ddp", "one") for k in (2, 4)}
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pt") == ["ddp.pt", "one.pt"]


def test_download_under_torchrun_happens_once_per_machine(tmp_path):
    """`train --download` on 2 processes: local rank 0 fetches while the other waits at a barrier, then both read
    the files (two processes downloading into one folder at once could leave it half-written). torchvision is a
    stand-in package here (no internet): its MNIST writes the raw file and logs each call."""
    fakes = tmp_path / "fakes" / "torchvision"
    fakes.mkdir(parents=True)
    (fakes / "__init__.py").write_text("from . import datasets\n")
    (fakes / "datasets.py").write_text(
        "import gzip, os, struct, time\n"
        "from pathlib import Path\n"
        "def MNIST(root, train, download):\n"
        "    with open(os.environ['FAKE_TORCHVISION_LOG'], 'a') as log:\n"
        "        log.write(f'{os.getpid()} {train} {download}\\n')\n"
        "    time.sleep(3)  # a download takes a while: long enough for a second process to start its own\n"
        "    raw = Path(root) / 'MNIST' / 'raw'\n"
        "    raw.mkdir(parents=True, exist_ok=True)\n"
        "    pixels = bytes(range(256)) * 49  # 16 images of 28x28\n"
        "    data = struct.pack('>IIII', 2051, 16, 28, 28) + pixels\n"
        "    (raw / 'train-images-idx3-ubyte.gz').write_bytes(gzip.compress(data))\n"
    )
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fakes.parent), os.environ.get("PYTHONPATH", "")])}
    env["FAKE_TORCHVISION_LOG"] = str(log)
    from test_cli import TINY as TINY_ARGS

    args = ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "files"), "--download", "--steps", "1"]
    args += TINY_ARGS
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ddpm_utils"]
    run = subprocess.run(launch + args + ["--out", str(tmp_path / "m.pt")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and calls[0].endswith("True True"), calls  # one process fetched, the train split
    assert load_checkpoint(tmp_path / "m.pt")["data_shape"] == [1, 28, 28]
