build2/auth/throttle.o: src/auth/throttle.c src/auth/throttle.h \
 src/core/dict.h
src/auth/throttle.h:
src/core/dict.h:
