build2/core/config.o: src/core/config.c src/core/config.h src/auth/sasl.h
src/core/config.h:
src/auth/sasl.h:
