build2/auth/ratelimit.o: src/auth/ratelimit.c src/auth/ratelimit.h \
 src/core/dict.h
src/auth/ratelimit.h:
src/core/dict.h:
