from repost.cli.entry import main

main()
