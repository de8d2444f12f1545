"""One router per area of the API (health, trading, scheduler, ws; market joins them later).

Each module exposes ``router(...)``: a factory that closes over the dependencies it needs,
so nothing is global and ``create_app`` decides what is wired in.
"""
