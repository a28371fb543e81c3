build2/net/tls.o: src/net/tls.c src/net/tls.h src/core/config.h
src/net/tls.h:
src/core/config.h:
