//! `snapcopy audit`: the columns of the chosen tables whose names or types look sensitive and
//! that no mask rule (nor `keep`) covers.
