from services.media.app import main

main()
