"""byoc plugin for a VTA-like int8 accelerator.

The package holds the accelerator's whole software side: its configuration
(:mod:`byoc_vta_sim.config`), the instruction set (:mod:`byoc_vta_sim.isa`, written down in
docs/vta-isa.md), the functional simulator that is the ISA's living spec
(:mod:`byoc_vta_sim.sim`), the instruction generator that lowers int8 layers to instruction
streams, and the byoc hooks (:mod:`byoc_vta_sim.plugin`).
"""

__version__ = "0.1.0"
