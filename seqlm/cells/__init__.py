"""Built-in recurrent cells: torch's modules and from-scratch versions of them."""
