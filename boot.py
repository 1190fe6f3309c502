# Runs before main.py on a board.

import micropython

# Room for the traceback of an exception raised where the heap is locked (an IRQ handler), so
# a field failure leaves a message instead of a bare MemoryError.
micropython.alloc_emergency_exception_buf(100)
