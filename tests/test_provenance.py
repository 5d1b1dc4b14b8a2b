"""Provenance names what decides a record's last bits: processor, math libraries, threads."""

from clrepro import provenance


def test_machine_names_the_cpu_and_its_math_kernels():
    info = provenance.machine("cpu", 2)
    assert info["cpu"] and info["threads"] == 2
    kernels = info["kernels"]
    assert set(kernels) == {"blas", "onednn", "cpu_capability"}
    import torch
    if torch.backends.mkldnn.is_available():
        assert kernels["onednn"] and kernels["onednn"][0].isdigit()
