build2/main.o: src/main.c src/cli/cli.h src/core/config.h \
 src/core/version.h src/net/tls.h src/serve.h
src/cli/cli.h:
src/core/config.h:
src/core/version.h:
src/net/tls.h:
src/serve.h:
