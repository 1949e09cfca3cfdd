from modelbus.cli import main

main()
