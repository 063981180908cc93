file 3: .bashrc
