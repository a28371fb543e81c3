build2/auth/sasl_lookup.o: src/auth/sasl_lookup.c src/auth/sasl.h \
 src/auth/password.h src/store/store.h
src/auth/sasl.h:
src/auth/password.h:
src/store/store.h:
