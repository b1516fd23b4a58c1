"""--precision bf16: autocast training that follows the float32 run closely."""

import types

import pytest
import torch

from seqlm.cells.torch_cells import TorchLSTM
from seqlm.data.samplers import SequentialSampler
from seqlm.errors import UsageError
from seqlm.model.rnn import RNNModel
from seqlm.training.trainer import DefaultTrainer, float32_products


def _train(precision: str) -> list[float]:
    torch.manual_seed(0)
    model = RNNModel(TorchLSTM(input_size=16, hidden_size=32), vocab_size=20, embedding_dim=16)
    corpus = (torch.arange(3000) * 7 % 20).long()  # a periodic text a model can learn
    trainer = DefaultTrainer(lr=0.01, clip=1.0, epochs=6, optimizer="adam", precision=precision)
    torch.manual_seed(1)
    return [m.train_loss for m in trainer.fit(model, corpus, SequentialSampler(8, 10))]


def test_bf16_learns_like_fp32():
    fp32, bf16 = _train("fp32"), _train("bf16")
    assert bf16[-1] < 0.5 * bf16[0]
    assert bf16 != fp32  # the forward pass really ran in bfloat16
    for a, b in zip(fp32, bf16, strict=True):
        assert b == pytest.approx(a, rel=0.05)


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="--precision 'fp8' not recognized"):
        DefaultTrainer(lr=1, clip=1, epochs=1, precision="fp8")


def test_tf32_is_fp32_off_cuda():
    assert _train("tf32") == _train("fp32")


def test_tf32_turns_on_tensor_float_products_for_cuda_training_only():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with float32_products(torch.device("cuda"), "tf32"):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    for device, precision in (("cpu", "tf32"), ("cuda", "fp32"), ("cuda", "bf16")):
        with float32_products(torch.device(device), precision):
            assert matmul.fp32_precision == before
    with pytest.raises(KeyError), float32_products(torch.device("cuda"), "tf32"):
        raise KeyError("training stopped")
    assert matmul.fp32_precision == before  # put back however training ends


def test_tf32_uses_allow_tf32_where_torch_has_no_fp32_precision(monkeypatch):
    older = types.SimpleNamespace(allow_tf32=False)  # torch before 2.9
    monkeypatch.setattr(torch.backends.cuda, "matmul", older)
    with float32_products(torch.device("cuda"), "tf32"):
        assert older.allow_tf32 is True
    assert older.allow_tf32 is False


def test_torch_cells_run_in_float32_where_the_cpu_has_no_bf16_kernels(monkeypatch):
    """oneDNN's recurrent kernels need AVX-512 for bfloat16; elsewhere torch's module
    fails under autocast, so the cell runs it in float32 and the run goes on."""
    from seqlm.cells import torch_cells

    monkeypatch.setattr(torch_cells, "_cpu_has_bf16_kernels", lambda: False)
    torch.manual_seed(0)
    cell = torch_cells.TorchLSTM(input_size=6, hidden_size=8, bidirectional=True)
    inputs = torch.randn(5, 3, 6)
    expected, _ = cell(inputs, cell.begin_state(3, "cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, (h, c) = cell(inputs, cell.begin_state(3, "cpu"))
    assert outputs.dtype == torch.float32 and h.dtype == torch.float32
    assert torch.equal(outputs, expected)
