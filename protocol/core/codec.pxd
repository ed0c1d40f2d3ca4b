# Typed declarations for the compiled build of codec.py (see outbox.pxd).
cdef class Decoder:
    cdef dict __dict__
    cdef public object dialect, sender, check_direction, max_blob_bytes, max_pending_bytes
    cdef public object _buf, _state, _blob_size, _blob, _ram_ctx, _reader, _ram_reader
    cdef public object _empty_part, _on_initial_page, keep_records, closed, accepts, on_wait
    cdef public bint _reset_pending
    cdef public dict _frames, _valued
    cdef public Py_ssize_t _pos, _blob_fill, _reader_start, bytes_consumed, _width

    # the read path's own steps: C calls (nothing outside the class calls them;
    # _next_item is cpdef: `colo qemu` wraps it with an instance attribute)
    cpdef _next_item(self)
    cdef Py_ssize_t _avail(self)
    cdef bytes _take(self, Py_ssize_t n)
    cdef _start_blob(self, size)
    cdef _next_message(self)
    cdef _start_ram(self)
    cdef _next_ram(self)
    cdef _next_initial(self)

cdef object _SD, _PG
cdef object _streamdecode()
cdef object _pages()
