fn main() {
    println!("hotplex");
}
