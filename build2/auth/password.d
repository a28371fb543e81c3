build2/auth/password.o: src/auth/password.c src/auth/password.h \
 src/core/str.h
src/auth/password.h:
src/core/str.h:
