from reglab.cli.commands import main

main()
