"""Episodic memories as components (RaptorMai-style): where examples are kept (storage),
which stream examples enter it (update), which are drawn for replay (retrieval), and which
images a class-incremental method keeps per class (exemplars: clrepro.memory.exemplars,
clrepro.memory.mnemonics).

Every storage has one `add(x, y, t)` and `batch(idx)`; an update decides slots, a retrieval
returns slots. So the online replay methods are combinations:

    ER    = SlotMemory + Reservoir        + Uniform
    MIR   = SlotMemory + Reservoir        + MaximallyInterfered
    GSS   = SlotMemory + GradientDiverse  + Uniform
    GMED  = ER or MIR + an edit of Uniform-drawn slots before replay (methods/gmed.py)
    A-GEM = SlotMemory + Reservoir        + Uniform (the reference gradient's batch)
    GEM, HAL = TaskRingMemory (ring per task: last_m | ring_shared_pointer); HAL draws with
            UniformOverTasks
    DRL   = ClassBalancedMemory (per-class ring | reservoir) + ClassSplit (ER) or
            Balanced (BER)

A new replay variant is a new update or retrieval class here, and one line in its method
(or none: tests/test_memory_components.py runs GSS's update with MIR's retrieval in ER).

Class-incremental exemplars (clrepro.methods.cil) are an ExemplarSet filled by a selection:

    random | herding          = RandomExemplars | HerdingExemplars (exemplars.kind)
    mnemonics                 = the selection of mnemonics.init, then MnemonicsProgram
                                (the bilevel program of Eqs. 8-9) on the new classes
    + mnemonics.adjust_old    = MnemonicsProgram on the old classes' halves (Eq. 10)

so the Mnemonics grid (LwF, iCaRL, BiC, LUCIR x random, herding, mnemonics; Tables 1-2) is
method x selection.
"""

from clrepro.memory.retrieval import (BER_VARIANTS, Balanced, ClassSplit, MaximallyInterfered,
                                      Uniform, UniformOverTasks, uniform_slots)
from clrepro.memory.storage import (ClassBalancedMemory, SlotMemory, TaskRingMemory,
                                    to_storage)
from clrepro.memory.update import CLASS_UPDATES, RING_POLICIES, GradientDiverse, Reservoir

__all__ = ["BER_VARIANTS", "Balanced", "CLASS_UPDATES", "ClassBalancedMemory", "ClassSplit",
           "GradientDiverse", "MaximallyInterfered", "Reservoir", "SlotMemory", "TaskRingMemory", "RING_POLICIES",
           "Uniform", "UniformOverTasks", "to_storage", "uniform_slots"]
