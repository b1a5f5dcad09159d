import torch

from models_ml import device


def test_best_device_is_cpu_without_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device.best_device().type == "cpu"


def test_best_device_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.best_device().type == "cuda"


def test_environment_pins_the_device(monkeypatch):
    monkeypatch.setenv("ANNOTATOR_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.best_device().type == "cpu"


def test_autocast_is_full_precision_on_cpu():
    assert device.autocast_dtype(torch.device("cpu")) is None
    with device.autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_autocast_uses_bf16_on_gpus_that_have_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.autocast_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert device.autocast_dtype(torch.device("cuda")) == torch.float16


def test_cpu_threads_follow_the_cpus_we_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        assert device.configure_cpu_threads() == device.available_cpus()
        assert torch.get_num_threads() == device.available_cpus()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert device.configure_cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
