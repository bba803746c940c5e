// Shows "wrong token" after a failed login (/login?wrong=1).
if (/[?&]wrong=1/.test(location.search)) document.getElementById('wrong').hidden = false;
