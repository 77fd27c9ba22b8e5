"""The host CPU as LLVM sees it: name, features, vector width, and a target machine."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm


@dataclass(frozen=True)
class HostTarget:
    """What code is generated for: the CPU, its feature string, and derived choices."""

    triple: str
    cpu: str
    features: str

    def has(self, feature: str) -> bool:
        return f"+{feature}" in self.features.split(",")

    @property
    def vector_bits(self) -> int:
        """The widest float vector the generated kernels use."""
        if self.has("avx512f"):
            return 512
        return 256 if self.has("avx2") else 128

    @property
    def float_lanes(self) -> int:
        return self.vector_bits // 32

    @property
    def key(self) -> str:
        """Identifies generated machine code: CPU, features and llvmlite version."""
        return f"{self.triple}|{self.cpu}|{self.features}|llvmlite {llvmlite.__version__}"


@functools.cache
def host_target() -> HostTarget:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features().flatten()
    return HostTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


def new_target_machine() -> llvm.TargetMachine:
    """A target machine of one's own (an MCJIT engine takes ownership of the one it gets, and
    modules compiled at once on several threads each need their own)."""
    host = host_target()
    target = llvm.Target.from_triple(host.triple)
    return target.create_target_machine(cpu=host.cpu, features=host.features, opt=3,
                                        reloc=RELOCATION, codemodel="jitdefault")


# A program's objects are linked at run time, each wherever the JIT puts it: the large code
# model with absolute relocations reaches any address and needs no GOT (with "pic", objects
# that each have a GOT and call one another crash).
RELOCATION = "static"
