"""Python client of the weightinit service (``Client``) and its in-process twin (``LocalClient``).

PyTorch models are filled with :func:`weightinit.torch.init_module` (``client=Client(...)``).
"""

from .core import (BFLOAT16_AS_UINT16, Chunk, Client, IntegrityError, LocalClient, ModelChunk, capabilities_to_dict,
                   field_violations, user_array)

__all__ = ["BFLOAT16_AS_UINT16", "Chunk", "Client", "IntegrityError", "LocalClient", "ModelChunk",
           "capabilities_to_dict", "field_violations", "user_array"]
