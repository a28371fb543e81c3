build2/mail/addrlist.o: src/mail/addrlist.c src/mail/addrlist.h \
 src/core/buf.h
src/mail/addrlist.h:
src/core/buf.h:
