build2/auth/sasl.o: src/auth/sasl.c src/auth/sasl.h src/core/base64.h \
 src/mail/address.h
src/auth/sasl.h:
src/core/base64.h:
src/mail/address.h:
