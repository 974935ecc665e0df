import sys

from .launcher import main

main(sys.argv[1:])
