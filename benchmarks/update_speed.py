"""`python benchmarks/speed.py update`, under the name earlier commands give it: update and acting
cost of the QSM presets against SB3 SAC, ending with `update ratio best/SAC: X`.

    python benchmarks/update_speed.py [--clock cpu] [--rounds 5] ...
"""

import sys

import speed

if __name__ == "__main__":
    speed.main(["update", *sys.argv[1:]])
