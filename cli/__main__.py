from repost.cli.main import main

main()
