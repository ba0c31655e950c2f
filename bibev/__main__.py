from bibev.cli.app import main

main()
