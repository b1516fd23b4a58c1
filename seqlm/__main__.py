"""``python -m seqlm`` runs the command line (and is what ``torchrun -m seqlm`` starts)."""

from seqlm.cli import main

if __name__ == "__main__":
    main()
