using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// Only a real v3 name (rend-spec-v3 §6: base32 of PUBKEY | CHECKSUM | VERSION 3) is one: a mistyped name fails its
/// checksum, like a mistyped journalist key.
/// </summary>
public sealed class OnionServiceAddressTests
{
    // tor's own test vector (src/test/hs_build_address.py): the address of RFC 8032's first ed25519 public key.
    private const string Rfc8032 = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid";

    [TestCase(Rfc8032 + ".onion")]
    [TestCase("pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion")]   // rend-spec-v3's examples
    [TestCase("xa4r2iadxm55fbnqgwwi5mymqdcofiu3w6rpbtqn7b2dyn7mgwj64jyd.onion")]
    [TestCase(TestDaemon.OnionHost)]
    public void A_real_v3_name_is_one(string host)
    {
        Assert.That(OnionServiceAddress.IsV3OnionName(host), Is.True);
        Assert.That(OnionServiceAddress.IsV3OnionName(host.ToUpperInvariant()), Is.True, "a Host header's case does not matter");
    }

    [Test]
    public void Any_one_character_changed_is_not()
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        for (var i = 0; i < Rfc8032.Length; i++)
            foreach (var c in Alphabet.Where(c => c != Rfc8032[i]))
            {
                var typo = Rfc8032[..i] + c + Rfc8032[(i + 1)..] + ".onion";
                Assert.That(OnionServiceAddress.IsV3OnionName(typo), Is.False, typo);
            }
    }

    [Test]
    public void Another_version_with_its_own_right_checksum_is_not()
    {
        // The same key and VERSION 4, the checksum made over version 4: only the version byte is wrong.
        Assert.That(OnionServiceAddress.IsV3OnionName("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenj73qe.onion"), Is.False);
    }

    [TestCase("notav3name.onion")]
    [TestCase(Rfc8032)]
    [TestCase(Rfc8032 + ".onion.")]
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5si1.onion")]
    public void A_malformed_name_is_not(string host) => Assert.That(OnionServiceAddress.IsV3OnionName(host), Is.False);
}
