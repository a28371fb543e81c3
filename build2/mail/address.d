build2/mail/address.o: src/mail/address.c src/mail/address.h
src/mail/address.h:
